using Peft.Training.FineTuning;

namespace Peft.Bench;

/// <summary>
/// The benchmark's rows: named fine-tuning requests of the methods in <see cref="FineTuneMethods"/> (the table the CLI
/// and the hub use), with the peer baseline's settings. Dropout is 0, as in PEFT's defaults the baseline ran with.
/// </summary>
public static class BenchMethods
{
    private static readonly string[] QueryValue = ["q_proj", "v_proj"];

    public static readonly IReadOnlyDictionary<string, FineTuneRequest> All = new Dictionary<string, FineTuneRequest>
    {
        ["full"] = new() { Method = "full" },
        ["lora_r8"] = Lora(8),
        ["lora_r16"] = Lora(16),
        ["lora_r64"] = Lora(64),
        ["dora"] = Lora(8) with { Method = "dora" },
        ["ia3"] = new() { Method = "ia3" },
        ["prefix"] = new() { Method = "prefix", NumVirtualTokens = 20 },
        ["adalora"] = new() { Method = "adalora", InitR = 12, TargetR = 8, LoraAlpha = 16, LoraDropout = 0, TargetModules = QueryValue },
    };

    /// <summary>LoRA on q_proj, v_proj with alpha = 2r (r=8 → alpha 16, the issue's default LoRA row).</summary>
    private static FineTuneRequest Lora(int r) => new() { Method = "lora", R = r, LoraAlpha = 2 * r, LoraDropout = 0, TargetModules = QueryValue };

    /// <summary>
    /// The row's adapter config for a causal LM (null = full fine-tuning); AdaLoRA schedules its budget over
    /// <paramref name="plannedSteps"/>.
    /// </summary>
    public static PeftConfig? Create(string name, int plannedSteps = 1000) =>
        All.TryGetValue(name, out var request) ? FineTuneMethods.CreateConfig(request, TaskType.CausalLM, plannedSteps)
            : throw new PeftUserException($"unknown benchmark method '{name}' (known: {string.Join(", ", All.Keys)})", UserErrorKind.BadRequest);
}
