using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Cli.Support;
using Peft.Training.Generation;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft info &lt;model_dir|adapter_dir&gt;</c>: a short summary of a model folder (architecture and parameter count,
/// from a meta-device build, so no weights are read) or of an adapter folder (its config and tensor file).
/// </summary>
internal static class InfoCommand
{
    /// <summary>Adapter config keys worth a line when present (LoRA first; others cover the prompt-learning and IA3 types).</summary>
    private static readonly string[] AdapterKeys =
        ["r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "use_dora", "init_r", "target_r",
         "feedforward_modules", "num_virtual_tokens", "modules_to_save"];

    public static Command Create(CliContext ctx)
    {
        var dir = new Argument<string>("dir") { Description = "Model folder (config.json) or adapter folder (adapter_config.json)" };
        var cmd = new Command("info", "Summarize a model or adapter folder") { dir };
        cmd.SetAction(p => Execute(ctx, p.GetValue(dir)!));
        return cmd;
    }

    private static int Execute(CliContext ctx, string dir)
    {
        if (!Directory.Exists(dir)) throw new PeftUserException($"{dir}: folder not found", UserErrorKind.NotFound);
        // An adapter folder may also carry a config.json (some trainers copy it); its adapter_config.json says what it is.
        if (File.Exists(Path.Combine(dir, PeftModel.ConfigFileName))) AdapterInfo(ctx, dir);
        else if (File.Exists(Path.Combine(dir, "config.json"))) ModelInfo(ctx, dir);
        else throw new PeftUserException($"{dir}: neither config.json (model) nor {PeftModel.ConfigFileName} (adapter) found", UserErrorKind.NotFound);
        return CliApp.Success;
    }

    private static void ModelInfo(CliContext ctx, string dir)
    {
        var config = ModelLoading.LoadConfig(dir);
        using var model = AutoModel.FromConfig(config, new ModelLoadOptions { Device = torch.META });
        long parameters = model.UniqueNamedParameters().Sum(p => p.Param.numel());
        var lines = new List<(string, string)>
        {
            ("model_type", config.ModelType),
            ("architecture", (config.Json["architectures"] as JsonArray)?.FirstOrDefault()?.ToString() ?? "-"),
            ("task", model.Task.ToPeftString()),
            ("layers", Int(model.NumLayers)),
            ("hidden size", Int(model.HiddenSize)),
            ("attention heads", model.NumKeyValueHeads == model.NumAttentionHeads
                ? Int(model.NumAttentionHeads)
                : $"{Int(model.NumAttentionHeads)} (key/value heads: {Int(model.NumKeyValueHeads)})"),
            ("vocab size", Int(model.VocabSize)),
            ("params", Long(parameters)),
            ("torch_dtype", config.GetString("torch_dtype") ?? "-"),
        };
        if (model.Task is TaskType.SequenceClassification or TaskType.TokenClassification)
            lines.Insert(3, ("labels", TaskHeads.LabelNames(config) is { } names ? string.Join(", ", names) : $"{TaskHeads.NumLabels(config)} (unnamed)"));
        string weights = Path.Combine(dir, "model.safetensors");
        if (File.Exists(weights)) lines.Add(("weights", $"model.safetensors, {Bytes(new FileInfo(weights).Length)}"));
        lines.Add(("tokenizer", File.Exists(Path.Combine(dir, "tokenizer.json")) ? "tokenizer.json" : "none"));
        if (File.Exists(Path.Combine(dir, GenerationConfig.FileName)))
        {
            var gen = GenerationConfig.Load(Path.Combine(dir, GenerationConfig.FileName));
            lines.Add(("generation", $"eos {Ids(gen.EosTokenIds)}, pad {Ids(gen.PadTokenId is { } p ? [p] : null)}, " +
                (gen.DoSample == true ? "sampling" : gen.NumBeams > 1 ? $"beam search ({gen.NumBeams})" : "greedy")));
        }
        Print(ctx, lines);
    }

    private static void AdapterInfo(CliContext ctx, string dir)
    {
        string path = Path.Combine(dir, PeftModel.ConfigFileName);
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new PeftConfigException($"{path}: invalid JSON ({e.Message})"); }
        if (node is not JsonObject json) throw new PeftConfigException($"{path}: expected a JSON object");
        // Read as plain JSON, not PeftConfigs: info should describe adapter types this engine cannot run, too.
        var lines = new List<(string, string)>
        {
            ("peft_type", Text(json["peft_type"]) ?? throw new PeftConfigException($"{path}: 'peft_type' is missing")),
            ("task_type", Text(json["task_type"]) ?? "-"),
            ("base model", Text(json["base_model_name_or_path"]) ?? "-"),
        };
        foreach (var key in AdapterKeys)
            if (json[key] is { } v && Text(v) is { } t && !(v.GetValueKind() == JsonValueKind.False)) lines.Add((key, t));

        string weights = Path.Combine(dir, PeftModel.WeightsFileName);
        if (File.Exists(weights))
        {
            using var file = SafetensorsFile.Open(weights);
            long elements = file.Entries.Sum(e => e.ElementCount), bytes = file.Entries.Sum(e => e.ByteLength);
            lines.Add(("tensors", $"{Long(file.Entries.Count)} ({Long(elements)} values, {Bytes(bytes)}) in {PeftModel.WeightsFileName}"));
        }
        else
        {
            lines.Add(("tensors", $"{PeftModel.WeightsFileName} not found"));
        }
        Print(ctx, lines);
    }

    private static void Print(CliContext ctx, List<(string Key, string Value)> lines)
    {
        int width = lines.Max(l => l.Key.Length) + 1;
        foreach (var (key, value) in lines) ctx.Out.WriteLine($"{(key + ":").PadRight(width)} {value}");
    }

    /// <summary>Strings unquoted, lists as [a, b], other JSON as written; null for JSON null.</summary>
    private static string? Text(JsonNode? v) => v switch
    {
        null => null,
        JsonValue s when s.GetValueKind() == JsonValueKind.String => s.GetValue<string>(),
        JsonArray a => "[" + string.Join(", ", a.Select(x => Text(x) ?? "null")) + "]",
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
