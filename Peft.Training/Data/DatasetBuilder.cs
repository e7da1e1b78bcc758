using Peft.Training.Models;
using Peft.Training.Tokenization;

namespace Peft.Training.Data;

/// <summary>How rows become examples.</summary>
public sealed record DatasetOptions
{
    public DataFormat Format { get; init; } = DataFormat.Auto;
    /// <summary>The model's task: decides the example layout (causal LM concatenates prompt and completion).</summary>
    public TaskType Task { get; init; } = TaskType.CausalLM;
    /// <summary>Examples longer than this are cut at the end (counted in <see cref="DatasetStats.RowsTruncated"/>).</summary>
    public int MaxLength { get; init; } = 1024;
    /// <summary>Block length for packed plain text; null = <see cref="MaxLength"/>.</summary>
    public int? BlockSize { get; init; }
    /// <summary>Loss only on completions (labels -100 on prompts) for instruction, chat and seq2seq data.</summary>
    public bool CompletionOnly { get; init; } = true;
    /// <summary>Skip and count malformed rows instead of failing on the first one.</summary>
    public bool SkipBadRows { get; init; }
    /// <summary>Class names (id = index) for string labels; null = the sorted distinct labels of the data.</summary>
    public IReadOnlyList<string>? LabelNames { get; init; }
}

/// <summary>
/// Turns data files into tokenized examples. Fields per format: text (<c>text</c>), instruction (<c>instruction</c>,
/// optional <c>input</c>, <c>output</c>), chat (<c>messages</c>), seq2seq (<c>source</c>/<c>target</c> or
/// <c>prompt</c>/<c>completion</c>), classification (<c>text</c>, <c>label</c>), token classification (<c>tokens</c>,
/// <c>tags</c>/<c>ner_tags</c>/<c>labels</c>), tokenized (<c>input_ids</c>, optional <c>attention_mask</c>, <c>labels</c>).
/// </summary>
public static partial class DatasetBuilder
{
    private const int MaxMessages = 20;

    /// <summary>Reads and tokenizes one file. <paramref name="tokenizer"/> may be null only for tokenized rows.</summary>
    public static TrainingDataset Load(string path, ITextTokenizer? tokenizer, DatasetOptions? options = null)
    {
        options ??= new DatasetOptions();
        var skipped = new List<string>();
        int bad = 0;
        var rows = DataFileReader.Read(path, options.SkipBadRows ? e => { bad++; Note(skipped, e.Message); } : null);
        if (rows.Count == 0 && bad == 0) throw new DataFormatException($"{path}:1: the file holds no rows");
        var ds = Build(rows, tokenizer, options);
        return new TrainingDataset(ds.Examples, ds.Stats with
        {
            RowsRead = ds.Stats.RowsRead + bad,
            BadRowsSkipped = ds.Stats.BadRowsSkipped + bad,
            SkippedMessages = skipped.Concat(ds.Stats.SkippedMessages).Take(MaxMessages).ToList(),
        }, ds.LabelNames);
    }

    /// <summary>Tokenizes rows already read (all of one format).</summary>
    public static TrainingDataset Build(IReadOnlyList<DataRecord> rows, ITextTokenizer? tokenizer, DatasetOptions options)
    {
        if (options.MaxLength < 2) throw new ArgumentException($"max length must be at least 2, got {options.MaxLength}");
        var format = options.Format == DataFormat.Auto && rows.Count > 0 ? DataFormats.Detect(rows[0]) : options.Format;
        if (format != DataFormat.Tokenized && tokenizer is null)
            throw new ArgumentException($"{format} data needs a tokenizer (only pre-tokenized rows can do without)");
        CheckTask(format, options.Task, rows.Count > 0 ? rows[0].File : "data");
        var ctx = new Context(tokenizer, options);
        var labelMap = format is DataFormat.Classification or DataFormat.TokenClassification ? LabelMap(rows, format, options) : null;

        var examples = new List<Example>();
        var packed = new List<long>();
        foreach (var row in rows)
        {
            try
            {
                switch (format)
                {
                    case DataFormat.Text:
                        ctx.AppendDocument(RowFields.String(row, "text"), packed);
                        break;
                    default:
                        if (ctx.Row(row, format, labelMap) is { } ex) examples.Add(ex);
                        break;
                }
            }
            catch (RowException e)
            {
                string msg = $"{row.Location}: {e.Message}";
                if (!options.SkipBadRows) throw new DataFormatException(msg);
                ctx.Bad++;
                Note(ctx.Skipped, msg);
            }
        }
        if (format == DataFormat.Text) examples.AddRange(Pack(packed, options.BlockSize ?? options.MaxLength));
        var stats = new DatasetStats
        {
            RowsRead = rows.Count,
            BadRowsSkipped = ctx.Bad,
            RowsWithoutLabels = ctx.NoLabels,
            RowsTruncated = ctx.Truncated,
            Tokens = examples.Sum(e => e.Tokens),
            SkippedMessages = ctx.Skipped,
        };
        if (examples.Count == 0)
            throw new DataFormatException($"{(rows.Count > 0 ? rows[0].File : "data")}: no usable example " +
                $"({rows.Count} rows, {ctx.Bad} malformed, {ctx.NoLabels} without tokens to learn)");
        return new TrainingDataset(examples, stats, labelMap?.Names);
    }

    /// <summary>Throws when rows of <paramref name="format"/> cannot train a <paramref name="task"/> head (the hub checks this before queueing).</summary>
    public static void CheckTask(DataFormat format, TaskType task, string file)
    {
        bool ok = format switch
        {
            DataFormat.Text or DataFormat.Instruction or DataFormat.Chat or DataFormat.Seq2Seq => task is TaskType.CausalLM or TaskType.Seq2SeqLM,
            DataFormat.Classification => task == TaskType.SequenceClassification,
            DataFormat.TokenClassification => task == TaskType.TokenClassification,
            _ => true,
        };
        if (!ok) throw new DataFormatException($"{file}: {format} data cannot train a {task.ToPeftString()} model");
        if (format == DataFormat.Text && task == TaskType.Seq2SeqLM)
            throw new DataFormatException($"{file}: plain text packing is for causal LMs; give an encoder-decoder model source/target rows");
    }

    private static void Note(List<string> messages, string m)
    {
        if (messages.Count < MaxMessages) messages.Add(m);
    }

    /// <summary>HF run_clm's group_texts: fixed blocks, the tail dropped (kept only when it is the only block).</summary>
    private static IEnumerable<Example> Pack(List<long> ids, int blockSize)
    {
        if (blockSize < 2) throw new ArgumentException($"block size must be at least 2, got {blockSize}");
        int full = ids.Count / blockSize;
        if (full == 0)
        {
            if (ids.Count >= 2) { var all = ids.ToArray(); yield return new Example(all, all); }
            yield break;
        }
        for (int b = 0; b < full; b++)
        {
            var block = ids.GetRange(b * blockSize, blockSize).ToArray();
            yield return new Example(block, block);
        }
    }

    internal sealed record LabelMapping(IReadOnlyList<string>? Names, Dictionary<string, long>? Ids);

    /// <summary>String labels → ids: the given names, else the sorted distinct strings of the data. Integer labels pass.</summary>
    private static LabelMapping LabelMap(IReadOnlyList<DataRecord> rows, DataFormat format, DatasetOptions options)
    {
        if (options.LabelNames is { } given)
            return new LabelMapping(given, given.Select((n, i) => (n, i)).ToDictionary(x => x.n, x => (long)x.i));
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var r in rows)
        {
            try
            {
                if (format == DataFormat.Classification)
                {
                    if (r.Fields["label"] is { } v && RowFields.Label(v, "label").Name is { } n) names.Add(n);
                }
                else if (RowFields.FirstPresent(r, "tags", "ner_tags", "labels") is { } f && RowFields.Array(r, f) is { } a)
                {
                    foreach (var t in a)
                        if (RowFields.Label(t, f).Name is { } n) names.Add(n);
                }
            }
            catch (RowException) { } // reported with its location when the row itself is processed
        }
        if (names.Count == 0) return new LabelMapping(null, null);
        var list = names.ToList();
        return new LabelMapping(list, list.Select((n, i) => (n, i)).ToDictionary(x => x.n, x => (long)x.i));
    }
}
