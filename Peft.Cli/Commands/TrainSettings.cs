using Peft.Cli.Support;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Cli.Commands;

/// <summary>Bad command-line or config input: the CLI prints the one-line message and exits with code 2.</summary>

/// <summary>One <c>peft train</c> setting: flag <c>--name</c>, config key <c>name</c> with '-' → '_'.</summary>
internal sealed record TrainSetting(string Name, TrainSetting.Kind Type, string Help)
{
    public enum Kind { Text, Int, Number, Flag, List }

    public string Flag => "--" + Name;
    public string Key => Name.Replace('-', '_');
}

/// <summary>
/// The values of every <see cref="TrainSetting"/>, merged from a JSON config file (<c>--config</c>) and the command
/// line (which wins). Typed reads throw <see cref="UsageException"/> naming the flag (or the config file and key).
/// </summary>
internal sealed class TrainSettings
{
    public static readonly TrainSetting[] All =
    [
        new("model", TrainSetting.Kind.Text, "base model folder (config.json + model.safetensors)"),
        new("tokenizer", TrainSetting.Kind.Text, "tokenizer folder (default: the model folder)"),
        new("data", TrainSetting.Kind.Text, "training data: .jsonl, .json, .csv, .tsv or plain text"),
        new("eval-data", TrainSetting.Kind.Text, "evaluation data (same formats)"),
        new("validation-split", TrainSetting.Kind.Number, "hold out this fraction of --data for evaluation (when no --eval-data)"),
        new("format", TrainSetting.Kind.Text, "auto|text|instruction|chat|seq2seq|classification|token-classification|tokenized (default auto)"),
        new("method", TrainSetting.Kind.Text, $"adapter method: {string.Join("|", TrainMethods.Names)} (head: the task head alone on a frozen base)"),
        new("task", TrainSetting.Kind.Text, "head to train: causal-lm|seq2seq-lm|seq-cls|token-cls|question-ans (or PEFT's SEQ_CLS ...; default: config.json's architectures)"),
        new("modules-to-save", TrainSetting.Kind.List, "adapter methods: modules trained and saved in full besides the adapter (the task head is added for classification)"),
        new("r", TrainSetting.Kind.Int, "LoRA rank (default 8)"),
        new("lora-alpha", TrainSetting.Kind.Number, "LoRA alpha (default 16)"),
        new("lora-dropout", TrainSetting.Kind.Number, "LoRA dropout (default 0.05)"),
        new("target-modules", TrainSetting.Kind.List, "comma-separated module names, or all-linear (default: the model family's)"),
        new("use-rslora", TrainSetting.Kind.Flag, "rank-stabilised LoRA scaling alpha/sqrt(r)"),
        new("init-r", TrainSetting.Kind.Int, "AdaLoRA: starting rank per module (default 12)"),
        new("target-r", TrainSetting.Kind.Int, "AdaLoRA: average rank after pruning (default 8)"),
        new("total-step", TrainSetting.Kind.Int, "AdaLoRA: steps the rank budget is scheduled over (default: the run's planned steps)"),
        new("num-virtual-tokens", TrainSetting.Kind.Int, "prefix/prompt/ptuning: virtual tokens (default 20)"),
        new("encoder-hidden-size", TrainSetting.Kind.Int, "prefix (with --prefix-projection) / ptuning: reparameterisation MLP width"),
        new("prefix-projection", TrainSetting.Kind.Flag, "prefix: train through an MLP reparameterisation (P-tuning v2 style)"),
        new("init-adapter", TrainSetting.Kind.Text, "continue training this saved adapter instead of a new one"),
        new("epochs", TrainSetting.Kind.Number, "training epochs (default 3)"),
        new("max-steps", TrainSetting.Kind.Int, "stop after this many optimizer steps (overrides --epochs)"),
        new("lr", TrainSetting.Kind.Number, "peak learning rate (default 2e-4)"),
        new("batch-size", TrainSetting.Kind.Int, "examples per micro-batch (default 8)"),
        new("eval-batch-size", TrainSetting.Kind.Int, "examples per evaluation batch (default: --batch-size)"),
        new("grad-accum", TrainSetting.Kind.Int, "micro-batches per optimizer step (default 1)"),
        new("block-size", TrainSetting.Kind.Int, "packed block length for plain text (default: --max-length)"),
        new("max-length", TrainSetting.Kind.Int, "examples are cut to this many tokens (default 512)"),
        new("train-on-prompt", TrainSetting.Kind.Flag, "also take the loss on prompts (default: completions only)"),
        new("skip-bad-rows", TrainSetting.Kind.Flag, "skip and count malformed rows instead of stopping"),
        new("optimizer", TrainSetting.Kind.Text, "adamw|sgd (default adamw)"),
        new("weight-decay", TrainSetting.Kind.Number, "weight decay (default 0)"),
        new("adam-beta1", TrainSetting.Kind.Number, "AdamW beta1 (default 0.9)"),
        new("adam-beta2", TrainSetting.Kind.Number, "AdamW beta2 (default 0.999)"),
        new("adam-epsilon", TrainSetting.Kind.Number, "AdamW epsilon (default 1e-8)"),
        new("momentum", TrainSetting.Kind.Number, "SGD momentum (default 0)"),
        new("max-grad-norm", TrainSetting.Kind.Number, "clip the gradient norm (default 1; 0 = off)"),
        new("loraplus-lr-ratio", TrainSetting.Kind.Number, "LoRA+: learning rate of B = lr x ratio"),
        new("scheduler", TrainSetting.Kind.Text, "linear|cosine|constant (default linear)"),
        new("warmup", TrainSetting.Kind.Number, "warmup steps (an integer) or a fraction of all steps (< 1)"),
        new("gradient-checkpointing", TrainSetting.Kind.Flag, "recompute decoder layers in backward (less memory)"),
        new("bf16", TrainSetting.Kind.Flag, "keep the frozen base model in bfloat16 (adapters stay float32)"),
        new("quantize", TrainSetting.Kind.Text, "load the frozen base quantised: nf4 (QLoRA), fp4 or int8; with --bf16 the matmuls run in bfloat16"),
        new("double-quant", TrainSetting.Kind.Flag, "with --quantize nf4|fp4: also quantise the per-block scales"),
        new("eval-every", TrainSetting.Kind.Int, "evaluate every N steps (default: at the end)"),
        new("save-every", TrainSetting.Kind.Int, "checkpoint every N steps (default: at the end)"),
        new("save-total-limit", TrainSetting.Kind.Int, "keep only the newest N checkpoints"),
        new("early-stopping-patience", TrainSetting.Kind.Int, "stop after N evaluations without eval-loss improvement"),
        new("seed", TrainSetting.Kind.Int, "random seed (default 42)"),
        new("no-shuffle", TrainSetting.Kind.Flag, "keep the data order"),
        new("out", TrainSetting.Kind.Text, "output folder (checkpoints and the final adapter)"),
        new("resume", TrainSetting.Kind.Text, "resume from a checkpoint folder, or the newest complete one in an output folder"),
        new("json-events", TrainSetting.Kind.Flag, "print one JSON event per line instead of a progress bar"),
    ];

    private readonly Dictionary<string, (JsonNode? Value, string Source)> _values = new();

    /// <summary>Loads a config file: a JSON object whose keys are setting names (<c>lora_alpha</c> or <c>lora-alpha</c>).</summary>
    public void LoadConfig(string path)
    {
        if (!File.Exists(path)) throw new UsageException($"{path}: config file not found");
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new UsageException($"{path}: invalid JSON ({e.Message})"); }
        if (node is not JsonObject obj) throw new UsageException($"{path}: expected a JSON object");
        foreach (var (key, value) in obj)
        {
            string k = key.Replace('-', '_');
            if (All.All(s => s.Key != k))
                throw new UsageException($"{path}: unknown field '{key}' (expected one of: {string.Join(", ", All.Select(s => s.Key))})");
            _values[k] = (value?.DeepClone(), $"{path}: field '{key}'");
        }
    }

    public void Set(TrainSetting s, JsonNode? value) => _values[s.Key] = (value, s.Flag);

    /// <summary>Reads every setting with its type, so a mistyped value fails before any file is touched.</summary>
    public void ValidateTypes()
    {
        foreach (var s in All)
        {
            _ = s.Type switch
            {
                TrainSetting.Kind.Text => (object?)Text(s.Name),
                TrainSetting.Kind.Int => Int(s.Name),
                TrainSetting.Kind.Number => Number(s.Name),
                TrainSetting.Kind.Flag => Flag(s.Name),
                _ => List(s.Name),
            };
        }
    }

    private TrainSetting Setting(string name) => All.First(s => s.Name == name);

    private (JsonNode? Value, string Source)? Raw(string name) =>
        _values.TryGetValue(Setting(name).Key, out var v) && v.Value is not null ? v : null;

    public bool Has(string name) => Raw(name) is not null;

    public string? Text(string name)
    {
        if (Raw(name) is not var (v, source)) return null;
        if (v is JsonValue jv && jv.TryGetValue<string>(out var s)) return s;
        throw new UsageException($"{source}: expected a string, got {v!.ToJsonString()}");
    }

    public string RequiredText(string name) => Text(name) is { Length: > 0 } s ? s : throw new UsageException($"--{name} is required");

    public int? Int(string name)
    {
        if (Raw(name) is not var (v, source)) return null;
        if (v is JsonValue jv)
        {
            if (jv.TryGetValue<int>(out var i)) return i;
            if (jv.TryGetValue<string>(out var s) && int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var p)) return p;
        }
        throw new UsageException($"{source}: expected an integer, got {Show(v)}");
    }

    public double? Number(string name)
    {
        if (Raw(name) is not var (v, source)) return null;
        if (v is JsonValue jv)
        {
            if (jv.TryGetValue<double>(out var d) && double.IsFinite(d)) return d;
            if (jv.TryGetValue<string>(out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var p) && double.IsFinite(p)) return p;
        }
        throw new UsageException($"{source}: expected a number, got {Show(v)}");
    }

    public bool Flag(string name)
    {
        if (Raw(name) is not var (v, source)) return false;
        if (v is JsonValue jv && jv.TryGetValue<bool>(out var b)) return b;
        throw new UsageException($"{source}: expected true or false, got {Show(v)}");
    }

    /// <summary>A list from a JSON array or a comma-separated string.</summary>
    public List<string>? List(string name)
    {
        if (Raw(name) is not var (v, source)) return null;
        if (v is JsonArray a && a.All(x => x is JsonValue xv && xv.TryGetValue<string>(out _)))
            return a.Select(x => x!.GetValue<string>()).ToList();
        if (v is JsonValue jv && jv.TryGetValue<string>(out var s))
            return s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
        throw new UsageException($"{source}: expected a list of names, got {Show(v)}");
    }

    /// <summary>Throws naming the setting when <paramref name="ok"/> is false.</summary>
    public void Check(string name, bool ok, string problem)
    {
        if (!ok) throw new UsageException($"{Raw(name)?.Source ?? "--" + name}: {problem}");
    }

    private static string Show(JsonNode? v) => v is JsonValue jv && jv.TryGetValue<string>(out var s) ? $"'{s}'" : v?.ToJsonString() ?? "null";
}
