using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Cli.Support;
using Peft.Training.FineTuning;
using Peft.Training.Tuners;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft info &lt;model_dir|adapter_dir&gt;</c>: a short summary of a model folder (architecture, parameter count and
/// target module names, from a meta-device build, so no weights are read) or of an adapter folder (its config and
/// tensor file), as <see cref="FolderInspector"/> reads them.
/// </summary>
internal static class InfoCommand
{
    public static Command Create(CliContext ctx)
    {
        var dir = new Argument<string>("dir") { Description = "Model folder (config.json) or adapter folder (adapter_config.json)" };
        var cmd = new Command("info", "Summarize a model or adapter folder") { dir };
        cmd.SetAction(p =>
        {
            string path = p.GetValue(dir)!;
            Print(ctx, FolderInspector.IsAdapter(path) ? AdapterLines(FolderInspector.Adapter(path)) : ModelLines(FolderInspector.Model(path)));
            return CliApp.Success;
        });
        return cmd;
    }

    private static List<(string, string)> ModelLines(ModelSummary m)
    {
        var lines = new List<(string, string)>
        {
            ("model_type", m.ModelType),
            ("architecture", m.Architecture ?? "-"),
            ("task", m.Task.ToPeftString()),
            ("layers", Int(m.Layers)),
            ("hidden size", Int(m.HiddenSize)),
            ("attention heads", m.KeyValueHeads == m.AttentionHeads
                ? Int(m.AttentionHeads)
                : $"{Int(m.AttentionHeads)} (key/value heads: {Int(m.KeyValueHeads)})"),
            ("vocab size", Int(m.VocabSize)),
            ("params", Long(m.Parameters)),
            ("torch_dtype", m.TorchDtype ?? "-"),
        };
        if (m.Task is TaskType.SequenceClassification or TaskType.TokenClassification)
            lines.Insert(3, ("labels", m.Labels is { } names ? string.Join(", ", names) : $"{m.NumLabels} (unnamed)"));
        if (m.WeightsBytes is { } bytes) lines.Add(("weights", $"model.safetensors, {Bytes(bytes)}"));
        lines.Add(("tokenizer", m.HasTokenizer ? "tokenizer.json" : "none"));
        if (m.Generation is { } gen)
            lines.Add(("generation", $"eos {Ids(gen.EosTokenIds)}, pad {Ids(gen.PadTokenId is { } p ? [p] : null)}, " +
                (gen.DoSample == true ? "sampling" : gen.NumBeams > 1 ? $"beam search ({gen.NumBeams})" : "greedy")));
        lines.Add(("target modules", $"{string.Join(", ", m.TargetableModules)} (LoRA default: {(m.DefaultTargets is { } d ? string.Join(", ", d) : "none")})"));
        return lines;
    }

    private static List<(string, string)> AdapterLines(AdapterSummary a)
    {
        var lines = new List<(string, string)> { ("peft_type", a.PeftType), ("task_type", a.TaskType ?? "-"), ("base model", a.BaseModel ?? "-") };
        foreach (var (key, value) in a.Settings) lines.Add((key, Text(value)));
        lines.Add(("tensors", a.Tensors is var (count, values, bytes)
            ? $"{Long(count)} ({Long(values)} values, {Bytes(bytes)}) in {PeftModel.WeightsFileName}"
            : $"{PeftModel.WeightsFileName} not found"));
        return lines;
    }

    private static void Print(CliContext ctx, List<(string Key, string Value)> lines)
    {
        int width = lines.Max(l => l.Key.Length) + 1;
        foreach (var (key, value) in lines) ctx.Out.WriteLine($"{(key + ":").PadRight(width)} {value}");
    }

    /// <summary>Strings unquoted, lists as [a, b], other JSON as written.</summary>
    private static string Text(JsonNode? v) => v switch
    {
        null => "null",
        JsonValue s when s.GetValueKind() == JsonValueKind.String => s.GetValue<string>(),
        JsonArray a => "[" + string.Join(", ", a.Select(Text)) + "]",
        _ => v.ToJsonString(),
    };

    private static string Ids(IReadOnlyList<int>? ids) => ids is null or { Count: 0 } ? "-" : string.Join(",", ids);
    private static string Int(int v) => v.ToString("N0", CultureInfo.InvariantCulture);
    private static string Long(long v) => v.ToString("N0", CultureInfo.InvariantCulture);

    private static string Bytes(long n)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double v = n;
        int u = 0;
        for (; v >= 1024 && u < units.Length - 1; u++) v /= 1024;
        return u == 0 ? $"{Long(n)} B" : string.Create(CultureInfo.InvariantCulture, $"{v:0.0} {units[u]}");
    }
}
