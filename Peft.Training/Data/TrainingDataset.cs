using Peft.Training.Models;

namespace Peft.Training.Data;

/// <summary>One tokenized training example.</summary>
/// <param name="InputIds">Token ids (encoder ids for encoder-decoder models).</param>
/// <param name="Labels">Per-token labels with -100 where no loss is taken (same length as the ids; decoder labels for
/// encoder-decoder models), or a single class id for sequence classification.</param>
/// <param name="AttentionMask">Null = all ones.</param>
public sealed record Example(long[] InputIds, long[] Labels, long[]? AttentionMask = null)
{
    /// <summary>
    /// Number of positions that contribute to the loss for <paramref name="task"/>: the causal shift drops the first
    /// label, unless virtual tokens are prepended (the last one then predicts the first real token).
    /// </summary>
    public long LossItems(TaskType task, int virtualTokens = 0) => task == TaskType.CausalLM && virtualTokens == 0
        ? Labels.Skip(1).Count(l => l != -100)
        : Labels.Count(l => l != -100);

    public long Tokens => AttentionMask?.Count(m => m != 0) ?? InputIds.Length;
}

/// <summary>Counts from building a dataset: nothing is dropped silently.</summary>
public sealed record DatasetStats
{
    public int RowsRead { get; init; }
    /// <summary>Malformed rows skipped (only with <c>SkipBadRows</c>; otherwise they throw).</summary>
    public int BadRowsSkipped { get; init; }
    /// <summary>Rows that left no token to learn from (empty text, or a prompt filling the whole max length).</summary>
    public int RowsWithoutLabels { get; init; }
    public int RowsTruncated { get; init; }
    public long Tokens { get; init; }
    /// <summary>The first few skip messages (<c>file:line: why</c>).</summary>
    public IReadOnlyList<string> SkippedMessages { get; init; } = [];
}

/// <summary>An in-memory list of tokenized examples.</summary>
public sealed class TrainingDataset(IReadOnlyList<Example> examples, DatasetStats stats, IReadOnlyList<string>? labelNames = null)
{
    public IReadOnlyList<Example> Examples { get; } = examples;
    public DatasetStats Stats { get; } = stats;
    /// <summary>Class names by id when string labels were mapped (sorted ordinally), else null.</summary>
    public IReadOnlyList<string>? LabelNames { get; } = labelNames;
    public int Count => Examples.Count;

    /// <summary>
    /// Deterministic split: a seeded shuffle, then the last <paramref name="validationFraction"/> (at least one
    /// example when the fraction is positive) becomes the validation set.
    /// </summary>
    public (TrainingDataset Train, TrainingDataset Validation) Split(double validationFraction, int seed)
    {
        if (validationFraction is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(validationFraction), "must be in (0, 1)");
        if (Count < 2) throw new InvalidOperationException($"cannot split {Count} example(s) into train and validation");
        var order = SeededShuffle.Permutation(Count, (ulong)seed, 0);
        int nVal = Math.Clamp((int)Math.Round(Count * validationFraction), 1, Count - 1);
        var train = order.Take(Count - nVal).Select(i => Examples[i]).ToList();
        var val = order.Skip(Count - nVal).Select(i => Examples[i]).ToList();
        return (new TrainingDataset(train, Stats, LabelNames), new TrainingDataset(val, Stats, LabelNames));
    }
}

/// <summary>Seeded permutations independent of .NET's Random implementation (SplitMix64 + Fisher-Yates).</summary>
public static class SeededShuffle
{
    public static int[] Permutation(int n, ulong seed, int epoch)
    {
        var p = Enumerable.Range(0, n).ToArray();
        ulong state = seed * 0x9E3779B97F4A7C15UL + (ulong)epoch * 0xBF58476D1CE4E5B9UL + 1;
        for (int i = n - 1; i > 0; i--)
        {
            int j = (int)(Next(ref state) % (ulong)(i + 1));
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }

    private static ulong Next(ref ulong s)
    {
        ulong z = s += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
