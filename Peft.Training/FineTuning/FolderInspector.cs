using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Training.Generation;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Nn;
using Peft.Training.Tuners;
using TorchSharp;

namespace Peft.Training.FineTuning;

/// <summary>A model folder, from a meta-device build (no weights read).</summary>
/// <param name="TargetableModules">Distinct names of the model's Linear / Conv1D layers: what <c>target_modules</c> may list.</param>
/// <param name="DefaultTargets">The family's default LoRA targets (PEFT's table), or null when it has none.</param>
public sealed record ModelSummary(
    string ModelType, string? Architecture, TaskType Task, IReadOnlyList<string>? Labels, int NumLabels,
    int Layers, int HiddenSize, int AttentionHeads, int KeyValueHeads, int VocabSize, long Parameters, string? TorchDtype,
    long? WeightsBytes, bool HasTokenizer, GenerationConfig? Generation,
    IReadOnlyList<string> TargetableModules, IReadOnlyList<string>? DefaultTargets);

/// <summary>An adapter folder: its config's notable keys and its tensor file.</summary>
/// <param name="Settings">The notable keys present in adapter_config.json (false flags left out), in a fixed order.</param>
/// <param name="Tensors">Tensor count, values and bytes of adapter_model.safetensors; null when the file is missing.</param>
public sealed record AdapterSummary(string PeftType, string? TaskType, string? BaseModel,
    IReadOnlyList<KeyValuePair<string, JsonNode>> Settings, (int Count, long Values, long Bytes)? Tensors);

/// <summary>What <c>peft info</c> and the hub's catalog show about a folder.</summary>
public static class FolderInspector
{
    /// <summary>Adapter config keys worth showing when present (LoRA first; others cover the prompt-learning and IA3 types).</summary>
    private static readonly string[] AdapterKeys =
        ["r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "use_dora", "init_r", "target_r",
         "feedforward_modules", "num_virtual_tokens", "modules_to_save"];

    /// <summary>True when <paramref name="dir"/> is an adapter folder (its adapter_config.json says so, even next to a config.json).</summary>
    public static bool IsAdapter(string dir)
    {
        if (!Directory.Exists(dir)) throw new PeftUserException($"{dir}: folder not found", UserErrorKind.NotFound);
        if (File.Exists(Path.Combine(dir, PeftModel.ConfigFileName))) return true;
        if (File.Exists(Path.Combine(dir, "config.json"))) return false;
        throw new PeftUserException($"{dir}: neither config.json (model) nor {PeftModel.ConfigFileName} (adapter) found", UserErrorKind.NotFound);
    }

    public static ModelSummary Model(string dir)
    {
        if (!Directory.Exists(dir)) throw new PeftUserException($"{dir}: model folder not found", UserErrorKind.NotFound);
        var config = ModelConfig.FromFolder(dir);
        using var model = AutoModel.FromConfig(config, new ModelLoadOptions { Device = torch.META });
        long parameters = model.UniqueNamedParameters().Sum(p => p.Param.numel());
        bool classifies = model.Task is TaskType.SequenceClassification or TaskType.TokenClassification;
        string weights = Path.Combine(dir, "model.safetensors");
        string genFile = Path.Combine(dir, GenerationConfig.FileName);
        var targetable = model.named_modules().Where(m => m.module is LinearLayer && m.name.Length > 0)
            .Select(m => m.name[(m.name.LastIndexOf('.') + 1)..]).Distinct().ToList();
        return new ModelSummary(
            config.ModelType,
            (config.Json["architectures"] as JsonArray)?.FirstOrDefault()?.ToString(),
            model.Task,
            classifies ? TaskHeads.LabelNames(config) : null,
            classifies ? TaskHeads.NumLabels(config) : 0,
            model.NumLayers, model.HiddenSize, model.NumAttentionHeads, model.NumKeyValueHeads, model.VocabSize, parameters,
            config.GetString("torch_dtype"),
            File.Exists(weights) ? new FileInfo(weights).Length : null,
            File.Exists(Path.Combine(dir, "tokenizer.json")),
            File.Exists(genFile) ? GenerationConfig.Load(genFile) : null,
            targetable,
            Tuners.DefaultTargetsOrNull(config.ModelType));
    }

    public static AdapterSummary Adapter(string dir)
    {
        string path = Path.Combine(dir, PeftModel.ConfigFileName);
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new PeftConfigException($"{path}: invalid JSON ({e.Message})"); }
        if (node is not JsonObject json) throw new PeftConfigException($"{path}: expected a JSON object");
        // Read as plain JSON, not PeftConfigs: info should describe adapter types this engine cannot run, too.
        string peftType = Text(json["peft_type"]) ?? throw new PeftConfigException($"{path}: 'peft_type' is missing");
        var settings = AdapterKeys.Where(k => json[k] is { } v && v.GetValueKind() != JsonValueKind.False)
            .Select(k => new KeyValuePair<string, JsonNode>(k, json[k]!.DeepClone())).ToList();
        string weights = Path.Combine(dir, PeftModel.WeightsFileName);
        (int, long, long)? tensors = null;
        if (File.Exists(weights))
        {
            using var file = SafetensorsFile.Open(weights);
            tensors = (file.Entries.Count, file.Entries.Sum(e => e.ElementCount), file.Entries.Sum(e => e.ByteLength));
        }
        return new AdapterSummary(peftType, Text(json["task_type"]), Text(json["base_model_name_or_path"]), settings, tensors);
    }

    private static string? Text(JsonNode? v) => v is JsonValue s && s.GetValueKind() == JsonValueKind.String ? s.GetValue<string>() : null;

    private static class Tuners
    {
        public static IReadOnlyList<string>? DefaultTargetsOrNull(string modelType) =>
            Peft.Core.Configs.DefaultTargets.Lora.TryGetValue(modelType, out var t) ? t : null;
    }
}
