using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Training.FineTuning;

/// <summary>Documents one request key: its help line and, when the default is derived, what it is derived from.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class RequestKeyAttribute(string name, string help) : Attribute
{
    public string Name { get; } = name;
    public string Help { get; } = help;
    /// <summary>Default of a nullable key whose absence means "derived" (e.g. "the model folder").</summary>
    public string? DefaultText { get; init; }
    /// <summary>Another accepted spelling (the CLI's historic flag).</summary>
    public string? Alias { get; init; }
}

/// <summary>One key of <see cref="FineTuneRequest"/>: name, value kind, help and the documented default.</summary>
public sealed record RequestKey(string Name, RequestKey.ValueKind Kind, string Help, string? Default, string? Alias, PropertyInfo Property)
{
    public enum ValueKind { Text, Int, Number, Flag, List }
}

/// <summary>
/// A fine-tuning job as the user states it: the keys of <c>peft train --config FILE.json</c> and of the hub's
/// <c>POST /api/jobs</c> (snake_case, e.g. <c>method</c>, <c>r</c>, <c>lora_alpha</c>, <c>learning_rate</c>). The
/// property initialisers are the one set of defaults (docs/FINE-TUNING.md lists them); null means "derived", as the
/// key's help says. <see cref="FineTunePlan.Create"/> validates it.
/// </summary>
public sealed record FineTuneRequest
{
    [RequestKey("model", "base model folder (config.json + weights), or a folder name under the model roots")]
    public string? Model { get; init; }
    [RequestKey("tokenizer", "tokenizer folder", DefaultText = "the model folder")]
    public string? Tokenizer { get; init; }
    [RequestKey("data", "training data: .jsonl, .json, .csv, .tsv or plain text")]
    public string? Data { get; init; }
    [RequestKey("eval_data", "evaluation data (same formats)")]
    public string? EvalData { get; init; }
    [RequestKey("validation_split", "hold out this fraction of data for evaluation (when no eval_data)")]
    public double? ValidationSplit { get; init; }
    [RequestKey("format", "auto|text|instruction|chat|seq2seq|classification|token-classification|tokenized")]
    public string Format { get; init; } = "auto";
    [RequestKey("method", "lora|dora|adalora|ia3|prefix|prompt|ptuning|full|head (head: the task head alone on a frozen base)")]
    public string Method { get; init; } = "lora";
    [RequestKey("task", "head to train: causal-lm|seq2seq-lm|seq-cls|token-cls|question-ans|feature-extraction (or PEFT's SEQ_CLS ...)",
        DefaultText = "the adapter's task_type, else config.json's architectures")]
    public string? Task { get; init; }
    [RequestKey("modules_to_save", "adapter methods: modules trained and saved in full besides the adapter (the task head is added for classification)")]
    public IReadOnlyList<string>? ModulesToSave { get; init; }
    [RequestKey("r", "LoRA/DoRA rank")]
    public int R { get; init; } = 8;
    [RequestKey("lora_alpha", "LoRA/DoRA/AdaLoRA alpha")]
    public double LoraAlpha { get; init; } = 16;
    [RequestKey("lora_dropout", "LoRA/DoRA/AdaLoRA dropout, in [0, 1)")]
    public double LoraDropout { get; init; } = 0.05;
    [RequestKey("target_modules", "module names (list or comma-separated), or all-linear", DefaultText = "the model family's (PEFT's table)")]
    public IReadOnlyList<string>? TargetModules { get; init; }
    [RequestKey("use_rslora", "rank-stabilised LoRA scaling alpha/sqrt(r)")]
    public bool UseRslora { get; init; }
    [RequestKey("init_r", "AdaLoRA: starting rank per module")]
    public int InitR { get; init; } = 12;
    [RequestKey("target_r", "AdaLoRA: average rank after pruning, in 1..init_r")]
    public int TargetR { get; init; } = 8;
    [RequestKey("total_step", "AdaLoRA: steps the rank budget is scheduled over", DefaultText = "the run's planned steps")]
    public int? TotalStep { get; init; }
    [RequestKey("num_virtual_tokens", "prefix/prompt/ptuning: virtual tokens")]
    public int NumVirtualTokens { get; init; } = 20;
    [RequestKey("encoder_hidden_size", "prefix (with prefix_projection) / ptuning: reparameterisation MLP width", DefaultText = "the model's hidden size")]
    public int? EncoderHiddenSize { get; init; }
    [RequestKey("prefix_projection", "prefix: train through an MLP reparameterisation (P-tuning v2 style)")]
    public bool PrefixProjection { get; init; }
    [RequestKey("init_adapter", "continue training this saved adapter instead of a new one")]
    public string? InitAdapter { get; init; }
    [RequestKey("epochs", "training epochs")]
    public double Epochs { get; init; } = 3;
    [RequestKey("max_steps", "stop after this many optimizer steps (overrides epochs)", DefaultText = "epochs decide")]
    public int? MaxSteps { get; init; }
    [RequestKey("learning_rate", "peak learning rate", Alias = "lr")]
    public double LearningRate { get; init; } = 2e-4;
    [RequestKey("batch_size", "examples per micro-batch")]
    public int BatchSize { get; init; } = 8;
    [RequestKey("eval_batch_size", "examples per evaluation batch", DefaultText = "batch_size")]
    public int? EvalBatchSize { get; init; }
    [RequestKey("grad_accum", "micro-batches per optimizer step")]
    public int GradAccum { get; init; } = 1;
    [RequestKey("block_size", "packed block length for plain text", DefaultText = "max_length")]
    public int? BlockSize { get; init; }
    [RequestKey("max_length", "examples are cut to this many tokens")]
    public int MaxLength { get; init; } = 512;
    [RequestKey("train_on_prompt", "also take the loss on prompts (default: completions only)")]
    public bool TrainOnPrompt { get; init; }
    [RequestKey("skip_bad_rows", "skip and count malformed rows instead of stopping")]
    public bool SkipBadRows { get; init; }
    [RequestKey("optimizer", "adamw|sgd")]
    public string Optimizer { get; init; } = "adamw";
    [RequestKey("weight_decay", "weight decay (not applied to biases and norms, as HF Trainer)")]
    public double WeightDecay { get; init; }
    [RequestKey("adam_beta1", "AdamW beta1")]
    public double AdamBeta1 { get; init; } = 0.9;
    [RequestKey("adam_beta2", "AdamW beta2")]
    public double AdamBeta2 { get; init; } = 0.999;
    [RequestKey("adam_epsilon", "AdamW epsilon")]
    public double AdamEpsilon { get; init; } = 1e-8;
    [RequestKey("momentum", "SGD momentum")]
    public double Momentum { get; init; }
    [RequestKey("max_grad_norm", "clip the gradient norm (0 = off)")]
    public double MaxGradNorm { get; init; } = 1;
    [RequestKey("loraplus_lr_ratio", "LoRA+: learning rate of B = learning_rate x ratio", DefaultText = "off")]
    public double? LoraplusLrRatio { get; init; }
    [RequestKey("scheduler", "linear|cosine|constant")]
    public string Scheduler { get; init; } = "linear";
    [RequestKey("warmup", "warmup steps (a whole number) or a fraction of all steps (< 1)")]
    public double Warmup { get; init; }
    [RequestKey("gradient_checkpointing", "recompute decoder layers in backward (less memory)")]
    public bool GradientCheckpointing { get; init; }
    [RequestKey("bf16", "keep the frozen base model in bfloat16 (adapters stay float32)")]
    public bool Bf16 { get; init; }
    [RequestKey("quantize", "load the frozen base quantised: nf4 (QLoRA), fp4 or int8; with bf16 the matmuls run in bfloat16", DefaultText = "off")]
    public string? Quantize { get; init; }
    [RequestKey("double_quant", "with quantize nf4|fp4: also quantise the per-block scales")]
    public bool DoubleQuant { get; init; }
    [RequestKey("eval_every", "evaluate every N steps (0 = at the end)")]
    public int EvalEvery { get; init; }
    [RequestKey("save_every", "checkpoint every N steps (0 = at the end)")]
    public int SaveEvery { get; init; }
    [RequestKey("save_total_limit", "keep only the newest N checkpoints", DefaultText = "all")]
    public int? SaveTotalLimit { get; init; }
    [RequestKey("early_stopping_patience", "stop after N evaluations without eval-loss improvement", DefaultText = "never")]
    public int? EarlyStoppingPatience { get; init; }
    [RequestKey("seed", "seed of the run's generator (adapter init, dropout, shuffling, validation split)")]
    public int Seed { get; init; } = 42;
    [RequestKey("no_shuffle", "keep the data order")]
    public bool NoShuffle { get; init; }
    [RequestKey("out", "output folder (checkpoints and the final adapter or model)", DefaultText = "the resume folder's run")]
    public string? Out { get; init; }
    [RequestKey("resume", "resume from a checkpoint folder, or the newest complete one in an output folder")]
    public string? Resume { get; init; }

    /// <summary>Every key, in documentation order.</summary>
    public static IReadOnlyList<RequestKey> Keys { get; } = BuildKeys();

    /// <summary>The key <paramref name="spelled"/> stands for ('-' for '_', aliases such as <c>lr</c>), or null if none.</summary>
    public static RequestKey? FindKey(string spelled)
    {
        string name = spelled.Replace('-', '_');
        return Keys.FirstOrDefault(k => k.Name == name || k.Alias == name);
    }

    /// <summary>How an error names a key: <c>max_steps</c> by default; the CLI names its flag or the config file's field.</summary>
    internal Func<string, string> KeyLabel { get; init; } = key => key;

    internal string Label(string key) => KeyLabel(key);

    /// <summary>A user error naming <paramref name="key"/> as the caller spelled it.</summary>
    internal FineTuneRequestException Error(string key, string problem, UserErrorKind kind = UserErrorKind.Invalid) =>
        new(key, $"{Label(key)}: {problem}", kind);

    internal void Check(string key, bool ok, string problem)
    {
        if (!ok) throw Error(key, problem);
    }

    /// <summary>
    /// Reads a request from JSON (keys as above; '-' may stand for '_'; JSON null = the default). Numbers and flags
    /// may also be given as strings (command-line values). Errors name the key through <paramref name="keyLabel"/>.
    /// </summary>
    public static FineTuneRequest FromJson(JsonObject json, Func<string, string>? keyLabel = null)
    {
        keyLabel ??= key => key;
        var request = new FineTuneRequest { KeyLabel = keyLabel };
        foreach (var (rawKey, value) in json)
        {
            var key = FindKey(rawKey) ?? throw new FineTuneRequestException(rawKey,
                    $"{keyLabel(rawKey)}: unknown key (expected one of: {string.Join(", ", Keys.Select(k => k.Name))})", UserErrorKind.BadRequest);
            if (value is null) continue;
            key.Property.SetValue(request, Convert(key, value, keyLabel(rawKey)));
        }
        return request;
    }

    /// <summary>The request as JSON with every key (defaults included), readable by <see cref="FromJson"/>.</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject();
        foreach (var k in Keys)
        {
            object? v = k.Property.GetValue(this);
            o[k.Name] = v is IReadOnlyList<string> list ? new JsonArray(list.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray())
                : v is null ? null : JsonSerializer.SerializeToNode(v);
        }
        return o;
    }

    private static object Convert(RequestKey key, JsonNode value, string label)
    {
        static string Show(JsonNode v) => v is JsonValue jv && jv.TryGetValue<string>(out var s) ? $"'{s}'" : v.ToJsonString();
        FineTuneRequestException Bad(string expected) => new(key.Name, $"{label}: expected {expected}, got {Show(value)}", UserErrorKind.BadRequest);
        var jv = value as JsonValue;
        string? text = jv is not null && jv.TryGetValue<string>(out var s) ? s : null;
        switch (key.Kind)
        {
            case RequestKey.ValueKind.Text:
                return text ?? throw Bad("a string");
            case RequestKey.ValueKind.Int:
                if (jv is not null && jv.GetValueKind() == JsonValueKind.Number && Numeric(jv) is { } n && n == Math.Floor(n) && n is >= int.MinValue and <= int.MaxValue) return (int)n;
                if (text is not null && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var pi)) return pi;
                throw Bad("an integer");
            case RequestKey.ValueKind.Number:
                if (jv is not null && jv.GetValueKind() == JsonValueKind.Number && Numeric(jv) is { } d && double.IsFinite(d)) return d;
                if (text is not null && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var pd) && double.IsFinite(pd)) return pd;
                throw Bad("a number");
            case RequestKey.ValueKind.Flag:
                if (jv is not null && jv.TryGetValue<bool>(out var b)) return b;
                return text?.ToLowerInvariant() switch
                {
                    "true" or "1" or "yes" => true,
                    "false" or "0" or "no" => false,
                    _ => throw Bad("true or false"),
                };
            default:
                if (value is JsonArray a && a.All(x => x is JsonValue xv && xv.TryGetValue<string>(out _)))
                    return a.Select(x => x!.GetValue<string>()).ToList();
                if (text is not null) return text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
                throw Bad("a list of names");
        }
    }

    /// <summary>A JSON number, parsed or built in memory (a JsonValue made from an int does not read back as a double).</summary>
    private static double? Numeric(JsonValue v) =>
        v.TryGetValue<double>(out var d) ? d : v.TryGetValue<int>(out var i) ? i : v.TryGetValue<long>(out var l) ? l
        : v.TryGetValue<float>(out var f) ? f : v.TryGetValue<decimal>(out var m) ? (double)m : null;

    private static List<RequestKey> BuildKeys()
    {
        var defaults = new FineTuneRequest();
        var keys = new List<RequestKey>();
        foreach (var p in typeof(FineTuneRequest).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (p.GetCustomAttribute<RequestKeyAttribute>() is not { } attr) continue;
            var type = Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType;
            var kind = type == typeof(string) ? RequestKey.ValueKind.Text
                : type == typeof(int) ? RequestKey.ValueKind.Int
                : type == typeof(double) ? RequestKey.ValueKind.Number
                : type == typeof(bool) ? RequestKey.ValueKind.Flag
                : RequestKey.ValueKind.List;
            object? value = p.GetValue(defaults);
            string? shown = value switch
            {
                null => attr.DefaultText,
                bool flag => flag ? "true" : "false",
                double d => d.ToString("R", CultureInfo.InvariantCulture),
                _ => System.Convert.ToString(value, CultureInfo.InvariantCulture),
            };
            keys.Add(new RequestKey(attr.Name, kind, attr.Help, shown, attr.Alias, p));
        }
        return keys;
    }
}

/// <summary>A request key with a bad value; <see cref="Key"/> is the key as the request spelled it.</summary>
public sealed class FineTuneRequestException(string key, string message, UserErrorKind kind = UserErrorKind.Invalid)
    : PeftUserException(message, kind)
{
    public string Key { get; } = key;
}
