namespace Peft.Training.FineTuning;

/// <summary>
/// One fine-tuning method: its name (the request's <c>method</c>), the PEFT type it makes (null: the model's own
/// weights are trained) and how a request's keys become its adapter config.
/// </summary>
public sealed record FineTuneMethod(string Name, string? PeftType, string Description, Func<FineTuneRequest, PeftConfig?> BuildConfig)
{
    /// <summary>Trains the task head alone on a frozen base (the linear-probe baseline).</summary>
    public bool TrainsHeadOnly => Name == "head";
}

/// <summary>
/// The method table (PEFT's <c>PEFT_TYPE_TO_CONFIG_MAPPING</c> seen from a training job): the CLI's <c>--method</c>
/// list, the benchmark's rows and the hub's job form all derive from it. Adding a method is one entry here plus its
/// tuner in <see cref="Tuners.PeftMethods"/>.
/// </summary>
public static class FineTuneMethods
{
    public static IReadOnlyList<FineTuneMethod> All { get; } =
    [
        new("lora", "LORA", "LoRA: low-rank update B·A on the target modules", r => Lora(r, dora: false)),
        new("dora", "LORA", "DoRA: LoRA with a learned per-output magnitude", r => Lora(r, dora: true)),
        new("adalora", "ADALORA", "AdaLoRA: SVD-form LoRA whose ranks are pruned to target_r over the run", AdaLora),
        new("ia3", "IA3", "IA³: learned scaling of attention keys/values and feed-forward activations", r => new Ia3Config
        {
            TargetModules = Targets(r),
            // With explicit targets, none of them is a feed-forward input unless stated (PEFT requires the subset).
            FeedforwardModules = Targets(r) is null ? null : StringOrList.Of(),
        }),
        new("prefix", "PREFIX_TUNING", "prefix tuning / P-tuning v2: trained key/value prefixes in every layer", r => new PrefixTuningConfig
        {
            NumVirtualTokens = VirtualTokens(r), PrefixProjection = r.PrefixProjection, EncoderHiddenSize = r.EncoderHiddenSize,
        }),
        new("prompt", "PROMPT_TUNING", "prompt tuning: trained virtual token embeddings", r => new PromptTuningConfig { NumVirtualTokens = VirtualTokens(r) }),
        new("ptuning", "P_TUNING", "P-tuning: virtual tokens from an MLP encoder", r => new PromptEncoderConfig
        {
            NumVirtualTokens = VirtualTokens(r), EncoderHiddenSize = r.EncoderHiddenSize,
        }),
        new("full", null, "full fine-tuning: every weight of the model", _ => null),
        new("head", null, "the task head alone on the frozen base (linear probe)", _ => null),
    ];

    public static IEnumerable<string> Names => All.Select(m => m.Name);

    public static FineTuneMethod? Find(string name) => All.FirstOrDefault(m => m.Name.Equals(name, StringComparison.OrdinalIgnoreCase));

    /// <summary>The request's method, or an error naming the <c>method</c> key.</summary>
    public static FineTuneMethod Get(FineTuneRequest request) => Find(request.Method)
        ?? throw request.Error("method", $"unknown method '{request.Method}' (expected {string.Join(", ", Names)})");

    /// <summary>
    /// The adapter config the request asks for (null for full / head), validated, with modules_to_save applied, the
    /// model's <paramref name="task"/> as task_type and AdaLoRA's total_step defaulting to <paramref name="plannedSteps"/>.
    /// </summary>
    public static PeftConfig? CreateConfig(FineTuneRequest request, TaskType task, int plannedSteps)
    {
        var method = Get(request);
        var config = method.BuildConfig(request);
        if (request.ModulesToSave is { Count: > 0 } modules)
        {
            request.Check("modules_to_save", config is not null, $"only applies to adapter methods, not '{method.Name}'");
            config!.ModulesToSave = [.. modules];
        }
        if (config is not null)
        {
            // Prompt-learning configs need a task type (PEFT refuses none); a job takes the model's.
            config.TaskType ??= task;
            if (config is AdaLoraConfig ada) ada.TotalStep ??= plannedSteps;
            try { config.Validate(); }
            catch (PeftConfigException e) { throw request.Error("method", $"{method.Name}: {e.Message}"); }
        }
        return config;
    }

    private static StringOrList? Targets(FineTuneRequest r) => r.TargetModules is { Count: > 0 } targets
        ? targets is ["all-linear"] ? new StringOrList("all-linear", null) : StringOrList.Of([.. targets])
        : null;

    private static int VirtualTokens(FineTuneRequest r)
    {
        r.Check("num_virtual_tokens", r.NumVirtualTokens > 0, $"must be a positive integer, got {r.NumVirtualTokens}");
        r.Check("encoder_hidden_size", r.EncoderHiddenSize is null or > 0, $"must be a positive integer, got {r.EncoderHiddenSize}");
        return r.NumVirtualTokens;
    }

    private static void CheckLoraFamily(FineTuneRequest r)
    {
        r.Check("lora_dropout", r.LoraDropout is >= 0 and < 1, $"must be in [0, 1), got {r.LoraDropout}");
        r.Check("lora_alpha", r.LoraAlpha > 0, $"must be positive, got {r.LoraAlpha}");
    }

    private static AdaLoraConfig AdaLora(FineTuneRequest r)
    {
        CheckLoraFamily(r);
        r.Check("init_r", r.InitR > 0, $"must be a positive integer, got {r.InitR}");
        r.Check("target_r", r.TargetR > 0 && r.TargetR <= r.InitR, $"must be in 1..init_r ({r.InitR}), got {r.TargetR}");
        r.Check("total_step", r.TotalStep is null or > 0, $"must be a positive integer, got {r.TotalStep}");
        return new AdaLoraConfig
        {
            InitR = r.InitR, TargetR = r.TargetR, LoraAlpha = r.LoraAlpha, LoraDropout = r.LoraDropout, TotalStep = r.TotalStep,
            TargetModules = Targets(r),
        };
    }

    private static LoraConfig Lora(FineTuneRequest r, bool dora)
    {
        CheckLoraFamily(r);
        r.Check("r", r.R > 0, $"must be a positive integer, got {r.R}");
        var cfg = new LoraConfig { R = r.R, LoraAlpha = r.LoraAlpha, LoraDropout = r.LoraDropout, UseDora = dora, UseRslora = r.UseRslora };
        if (Targets(r) is { } targets) cfg.TargetModules = targets;
        return cfg;
    }
}
