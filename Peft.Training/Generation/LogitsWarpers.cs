using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Generation;

/// <summary>
/// transformers' sampling warpers, applied in its order: temperature, top-k, top-p. Removed tokens get -inf, so a
/// following softmax gives them probability 0.
/// </summary>
public static class LogitsWarpers
{
    /// <summary>Applies the active warpers to [rows, vocab] scores; returns a new tensor (the input is untouched).</summary>
    public static Tensor Apply(Tensor scores, double temperature, int topK, double topP, int minTokensToKeep = 1)
    {
        using var scope = torch.NewDisposeScope();
        var s = scores.alias();
        if (temperature != 1.0) s = Temperature(s, temperature);
        if (topK != 0) s = TopK(s, topK, minTokensToKeep);
        if (topP < 1.0) s = TopP(s, topP, minTokensToKeep);
        return s.MoveToOuterDisposeScope();
    }

    public static Tensor Temperature(Tensor scores, double temperature)
    {
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be > 0");
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar divisor = temperature;
        return scores / divisor;
    }

    /// <summary>Keeps every token whose score is ≥ the k-th largest (ties at the threshold survive, as in transformers).</summary>
    public static Tensor TopK(Tensor scores, int topK, int minTokensToKeep = 1)
    {
        if (topK <= 0) throw new ArgumentOutOfRangeException(nameof(topK), topK, "top_k must be a positive integer");
        using var scope = torch.NewDisposeScope();
        long k = Math.Min(Math.Max(topK, minTokensToKeep), scores.shape[^1]);
        var kth = scores.topk((int)k, dim: -1, largest: true, sorted: true).values.narrow(-1, k - 1, 1);
        using Scalar negInf = double.NegativeInfinity;
        return scores.masked_fill(scores < kth, negInf).MoveToOuterDisposeScope();
    }

    /// <summary>Keeps the smallest set of most likely tokens whose probabilities sum to ≥ p (at least minTokensToKeep).</summary>
    public static Tensor TopP(Tensor scores, double topP, int minTokensToKeep = 1)
    {
        if (topP < 0 || topP > 1) throw new ArgumentOutOfRangeException(nameof(topP), topP, "top_p must be in [0, 1]");
        using var scope = torch.NewDisposeScope();
        // Ascending sort: a token is dropped when the mass of everything below it (itself included) is ≤ 1 - p.
        var (sorted, order) = scores.sort(-1, descending: false);
        var cumulative = sorted.softmax(-1).cumsum(-1);
        using Scalar droppedMass = 1 - topP, keepFlag = false, negInf = double.NegativeInfinity;
        var remove = cumulative <= droppedMass;
        long vocab = scores.shape[^1];
        long keep = Math.Min(minTokensToKeep, vocab);
        remove.narrow(-1, vocab - keep, keep).fill_(keepFlag);
        var removeByToken = remove.scatter(-1, order, remove);
        return scores.masked_fill(removeByToken, negInf).MoveToOuterDisposeScope();
    }
}
