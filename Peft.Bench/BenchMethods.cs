using Peft.Training.Tuners;
using Peft.Training.Tuners.AdaLora;
using Peft.Training.Tuners.Ia3;
using Peft.Training.Tuners.Lora;
using Peft.Training.Tuners.PrefixTuning;

namespace Peft.Bench;

/// <summary>The fine-tuning methods the benchmark compares; null config = full fine-tuning.</summary>
public static class BenchMethods
{
    public static readonly IReadOnlyDictionary<string, Func<PeftConfig?>> All = new Dictionary<string, Func<PeftConfig?>>
    {
        ["full"] = () => null,
        ["lora_r8"] = () => Lora(8),
        ["lora_r16"] = () => Lora(16),
        ["lora_r64"] = () => Lora(64),
        ["dora"] = () => new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = StringOrList.Of("q_proj", "v_proj"), UseDora = true },
        ["ia3"] = () => new Ia3Config(),
        ["prefix"] = () => new PrefixTuningConfig { NumVirtualTokens = 20, TaskType = Core.Models.TaskType.CausalLM },
        ["adalora"] = () => new AdaLoraConfig { InitR = 12, TargetR = 8, LoraAlpha = 16, TargetModules = StringOrList.Of("q_proj", "v_proj"), TotalStep = 1000 },
    };

    /// <summary>LoRA on q_proj, v_proj with alpha = 2r (r=8 → alpha 16, the issue's default LoRA row).</summary>
    private static LoraConfig Lora(int r) => new() { R = r, LoraAlpha = 2 * r, TargetModules = StringOrList.Of("q_proj", "v_proj") };

    public static PeftConfig? Create(string name) =>
        All.TryGetValue(name, out var f) ? f() : throw new PeftUserException($"unknown benchmark method '{name}' (known: {string.Join(", ", All.Keys)})");
}
