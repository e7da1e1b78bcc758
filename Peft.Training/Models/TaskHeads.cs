using System.Text.Json.Nodes;
using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models;

/// <summary>What the families' backbones hand to their heads: the final hidden state and, on request, every one.</summary>
internal sealed record BackboneOutput(Tensor Hidden, List<Tensor>? States);

/// <summary>Pieces shared by the task heads of every family (classification, token classification, QA).</summary>
public static class TaskHeads
{
    /// <summary>
    /// transformers' <c>config.num_labels</c>: the size of <c>id2label</c> (what config.json stores), else an explicit
    /// <c>num_labels</c>, else 2 (PretrainedConfig's default).
    /// </summary>
    public static int NumLabels(ModelConfig c)
    {
        if (c.GetObject("id2label") is { Count: > 0 } labels) return labels.Count;
        int n = c.TryGetInt("num_labels") ?? 2;
        if (n <= 0) throw c.Error("num_labels", $"must be positive, got {n}");
        return n;
    }

    /// <summary>
    /// Module names of the task head (what PEFT's task wrappers train and save in full): <c>classifier</c>/<c>score</c>
    /// for classification, <c>qa_outputs</c> for question answering, none for language modelling.
    /// </summary>
    public static IReadOnlyList<string> ModuleNames(TaskType? task) => task switch
    {
        TaskType.SequenceClassification or TaskType.TokenClassification => ["classifier", "score"],
        TaskType.QuestionAnswering => ["qa_outputs"],
        _ => [],
    };

    /// <summary>
    /// Class names from config.json's <c>id2label</c> in id order, or null when it is absent or holds only
    /// transformers' placeholders (<c>LABEL_0</c>, <c>LABEL_1</c> ...), i.e. when the data should name the classes.
    /// </summary>
    public static IReadOnlyList<string>? LabelNames(ModelConfig c)
    {
        if (c.GetObject("id2label") is not { Count: > 0 } map) return null;
        var names = new string[map.Count];
        foreach (var (key, value) in map)
        {
            if (!int.TryParse(key, out int id) || id < 0 || id >= names.Length || value is not JsonValue v || !v.TryGetValue<string>(out var name))
                throw c.Error("id2label", $"expected ids 0..{names.Length - 1} mapped to names, got '{key}'");
            names[id] = name;
        }
        return names.Select((n, i) => n == $"LABEL_{i}").All(x => x) ? null : names;
    }

    /// <summary>Writes <c>id2label</c>, <c>label2id</c> and <c>num_labels</c> (transformers' <c>from_pretrained(id2label=...)</c>).</summary>
    public static void SetLabels(ModelConfig c, IReadOnlyList<string> names)
    {
        if (names.Count == 0) throw new ArgumentException("a classification head needs at least one label");
        var id2label = new JsonObject();
        var label2id = new JsonObject();
        for (int i = 0; i < names.Count; i++)
        {
            id2label[i.ToString(System.Globalization.CultureInfo.InvariantCulture)] = names[i];
            label2id[names[i]] = i;
        }
        c.Json["id2label"] = id2label;
        c.Json["label2id"] = label2id;
        c.Json["num_labels"] = names.Count;
    }

    /// <summary>Dropout before a classifier: <c>classifier_dropout</c> when set, else the family's hidden dropout.</summary>
    public static double ClassifierDropout(ModelConfig c, params string[] fallbackKeys) =>
        c.TryGetDouble("classifier_dropout") ?? c.TryGetDouble(fallbackKeys) ?? 0.1;

    /// <summary>
    /// Decoder sequence classification picks one position per row, as transformers 4.40 does: with a pad token,
    /// (first pad position − 1) mod length, which is the last token for right padding and also for left padding or
    /// rows without any pad (argmax of all-false is 0, so −1 wraps to the end); without input ids, the last position.
    /// <paramref name="logits"/> is [batch, seq, labels]; returns [batch, labels].
    /// </summary>
    public static Tensor PoolLastNonPad(Tensor logits, Tensor? inputIds, int? padTokenId)
    {
        using var scope = torch.NewDisposeScope();
        long b = logits.shape[0], s = logits.shape[1];
        if (padTokenId is null && b != 1) throw new ArgumentException("Cannot handle batch sizes > 1 if no padding token is defined (set pad_token_id in config.json)");
        Tensor index;
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        if (padTokenId is int pad && inputIds is not null)
        {
            using Scalar padId = pad, one = 1, length = inputIds.shape[^1];
            var firstPad = inputIds.eq(padId).to(ScalarType.Int32).argmax(-1);
            index = (firstPad - one).remainder(length);
        }
        else
        {
            using Scalar lastPosition = s - 1;
            index = torch.full(b, lastPosition, ScalarType.Int64, logits.device);
        }
        var rows = TensorRanges.Of(0, b, logits.device);
        return logits[rows, index.to(ScalarType.Int64)].MoveToOuterDisposeScope();
    }

    /// <summary>pad_token_id of a config (null when absent or a list).</summary>
    public static int? PadTokenId(ModelConfig c) =>
        c.Json.TryGetPropertyValue("pad_token_id", out var v) && v is JsonValue jv && jv.TryGetValue<int>(out var id) ? id : null;

    /// <summary>The hidden states the LM head projects: the last <see cref="ForwardArgs.LogitsToKeep"/> positions, or all.</summary>
    internal static Tensor ForLogits(Tensor hidden, ForwardArgs args) =>
        args.LogitsToKeep > 0 && hidden.shape[1] > args.LogitsToKeep ? hidden.narrow(1, hidden.shape[1] - args.LogitsToKeep, args.LogitsToKeep) : hidden;

    /// <summary>The output of a head: its logits, with the backbone's last hidden state (and all of them if asked for).</summary>
    internal static ModelOutput Output(Tensor logits, BackboneOutput backbone) => new()
    {
        Logits = logits.to(ScalarType.Float32).MoveToOuterDisposeScope(),
        LastHiddenState = backbone.Hidden.MoveToOuterDisposeScope(),
        HiddenStates = backbone.States?.Select(t => t.MoveToOuterDisposeScope()).ToList(),
    };
}
