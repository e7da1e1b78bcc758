using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Peft.Training.FineTuning;

namespace Peft.Web.Builder;

/// <summary>A hyperparameter preset of the job builder (the rest of the form keeps its values).</summary>
public sealed record JobPreset(string Name, string Description, double Epochs, int R, double LoraAlpha, double LearningRate, int MaxLength,
    string Scheduler, double Warmup)
{
    public static IReadOnlyList<JobPreset> All { get; } =
    [
        new("quick", "one epoch, rank 4: a first look in minutes", 1, 4, 8, 3e-4, 256, "linear", 0),
        new("balanced", "the service defaults: three epochs, rank 8", 3, 8, 16, 2e-4, 512, "linear", 0),
        new("thorough", "five epochs, rank 16, cosine schedule with warmup", 5, 16, 32, 1e-4, 1024, "cosine", 0.03),
    ];
}

/// <summary>
/// The job builder's state: the job-level names and the <see cref="FineTuneRequest"/> keys the form edits. It turns
/// into the <c>POST /api/jobs</c> body (job keys + request keys, snake_case) and the equivalent <c>peft train</c>
/// command; both are produced from the same key/value list, so they cannot disagree.
/// </summary>
public sealed class JobForm
{
    /// <summary>Methods a hub job may use: adapter methods (full / head train the model's own weights, which the catalog does not register).</summary>
    public static IReadOnlyList<FineTuneMethod> Methods { get; } = FineTuneMethods.All.Where(m => m.PeftType is not null).ToList();
    public static readonly string AllLinear = "all-linear";
    public static readonly string[] QuantizeOptions = ["nf4", "fp4", "int8"];

    // Job-level keys (JobRequestValidator.JobKeys on the server).
    public string? BaseModel { get; set; }
    public string? Dataset { get; set; }
    public string AdapterName { get; set; } = "";

    public string Method { get; set; } = "lora";
    public int R { get; set; } = 8;
    public double LoraAlpha { get; set; } = 16;
    public double LoraDropout { get; set; } = 0.05;
    public bool UseRslora { get; set; }
    public int InitR { get; set; } = 12;
    public int TargetR { get; set; } = 8;
    public int NumVirtualTokens { get; set; } = 20;
    public bool PrefixProjection { get; set; }
    public int? EncoderHiddenSize { get; set; }
    /// <summary>Module names, or [all-linear]; empty = the family default (the key is left out).</summary>
    public IReadOnlyList<string> TargetModules { get; set; } = [];
    /// <summary>nf4 / fp4 / int8, or null for a full-precision base.</summary>
    public string? Quantize { get; set; }
    public bool DoubleQuant { get; set; }

    public string Preset { get; set; } = "balanced";
    public double Epochs { get; set; } = 3;
    public int? MaxSteps { get; set; }
    public double LearningRate { get; set; } = 2e-4;
    public int BatchSize { get; set; } = 8;
    public int GradAccum { get; set; } = 1;
    public int MaxLength { get; set; } = 512;
    public string Scheduler { get; set; } = "linear";
    public double Warmup { get; set; }
    public double WeightDecay { get; set; }
    public double? ValidationSplit { get; set; }
    public int Seed { get; set; } = 42;
    public bool GradientCheckpointing { get; set; }
    public bool Bf16 { get; set; }

    public bool UsesLora => Method is "lora" or "dora" or "adalora";
    public bool UsesRank => Method is "lora" or "dora";
    public bool UsesTargets => Method is "lora" or "dora" or "adalora" or "ia3";
    public bool UsesVirtualTokens => Method is "prefix" or "prompt" or "ptuning";

    public void ApplyPreset(JobPreset p)
    {
        Preset = p.Name;
        Epochs = p.Epochs;
        R = p.R;
        LoraAlpha = p.LoraAlpha;
        LearningRate = p.LearningRate;
        MaxLength = p.MaxLength;
        Scheduler = p.Scheduler;
        Warmup = p.Warmup;
    }

    /// <summary>The request keys the form sets for its method, in documentation order (flags only when on).</summary>
    public List<KeyValuePair<string, JsonNode>> ConfigKeys()
    {
        var keys = new List<KeyValuePair<string, JsonNode>>();
        void Add(string key, JsonNode value) => keys.Add(new(key, value));
        Add("method", Method);
        if (UsesRank) Add("r", R);
        if (UsesLora)
        {
            Add("lora_alpha", LoraAlpha);
            Add("lora_dropout", LoraDropout);
        }
        if (UsesTargets && TargetModules.Count > 0) Add("target_modules", new JsonArray(TargetModules.Select(t => (JsonNode?)t).ToArray()));
        if (UsesRank && UseRslora) Add("use_rslora", true);
        if (Method == "adalora")
        {
            Add("init_r", InitR);
            Add("target_r", TargetR);
        }
        if (UsesVirtualTokens) Add("num_virtual_tokens", NumVirtualTokens);
        if (Method is "prefix" or "ptuning" && EncoderHiddenSize is { } e) Add("encoder_hidden_size", e);
        if (Method == "prefix" && PrefixProjection) Add("prefix_projection", true);
        Add("epochs", Epochs);
        if (MaxSteps is { } steps) Add("max_steps", steps);
        Add("learning_rate", LearningRate);
        Add("batch_size", BatchSize);
        if (GradAccum != 1) Add("grad_accum", GradAccum);
        Add("max_length", MaxLength);
        Add("scheduler", Scheduler);
        if (Warmup != 0) Add("warmup", Warmup);
        if (WeightDecay != 0) Add("weight_decay", WeightDecay);
        if (ValidationSplit is { } split) Add("validation_split", split);
        Add("seed", Seed);
        if (GradientCheckpointing) Add("gradient_checkpointing", true);
        if (Bf16) Add("bf16", true);
        if (Quantize is { Length: > 0 } q)
        {
            Add("quantize", q);
            if (DoubleQuant) Add("double_quant", true);
        }
        // Keep only keys of the one request format, so a rename there fails the tests rather than the server.
        return keys.Where(k => FineTuneRequest.FindKey(k.Key) is not null).ToList();
    }

    /// <summary>The exact <c>POST /api/jobs</c> body: base_model, dataset, adapter_name, then the request keys.</summary>
    public JsonObject ToBody()
    {
        var body = new JsonObject
        {
            ["base_model"] = BaseModel,
            ["dataset"] = Dataset,
            ["adapter_name"] = AdapterName.Trim(),
        };
        foreach (var (k, v) in ConfigKeys()) body[k] = v.DeepClone();
        return body;
    }

    /// <summary>
    /// <c>peft train</c> with the same keys as flags (<c>lora_alpha</c> → <c>--lora-alpha</c>), training the base's
    /// folder on the dataset's file into <c>ADAPTER_NAME/</c>.
    /// </summary>
    public string ToCommand(string? baseFolder, string? dataFile)
    {
        var sb = new StringBuilder("peft train");
        void Flag(string key, string? value) => sb.Append(" \\\n  --").Append(key.Replace('_', '-')).Append(value is null ? "" : " " + Quote(value));
        Flag("model", baseFolder ?? "BASE_MODEL_FOLDER");
        Flag("data", dataFile ?? "DATA_FILE");
        Flag("out", AdapterName.Trim() is { Length: > 0 } n ? n : "ADAPTER_NAME");
        foreach (var (key, value) in ConfigKeys())
        {
            if (value is JsonValue v && v.TryGetValue<bool>(out var on)) { if (on) Flag(key, null); continue; }
            Flag(key, value is JsonArray a ? string.Join(",", a.Select(x => x!.GetValue<string>())) : Text(value));
        }
        return sb.ToString();
    }

    private static string Text(JsonNode value) => value is JsonValue v && v.TryGetValue<double>(out var d)
        ? d.ToString("R", CultureInfo.InvariantCulture) : value is JsonValue s && s.TryGetValue<string>(out var t) ? t : value.ToJsonString();

    /// <summary>POSIX shell quoting when a value holds anything but safe characters.</summary>
    private static string Quote(string s) =>
        s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || "-_./,=:@+".Contains(c)) ? s : "'" + s.Replace("'", "'\\''") + "'";
}
