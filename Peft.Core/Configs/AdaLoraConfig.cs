using System.Text.Json.Nodes;

using Peft.Core.IO;
using Peft.Core.Models;

namespace Peft.Core.Configs;

/// <summary>
/// <c>AdaLoraConfig</c>: the LoRA fields (r is ignored; ranks start at <see cref="InitR"/>) plus the rank-budget
/// schedule. <see cref="RankPattern"/> maps "<c>&lt;module path&gt;.lora_E</c>" to a keep-flag per initial rank; it is
/// written by the rank allocator and tells loading which ranks a checkpoint holds.
/// </summary>
public sealed class AdaLoraConfig : LoraFamilyConfig
{
    public override string PeftType => "ADALORA";

    // AdaLoRA fields (r is unused: PEFT keeps LoraConfig's default 8 in the file).
    public int TargetR { get; set; } = 8;
    public int InitR { get; set; } = 12;
    public int Tinit { get; set; }
    public int Tfinal { get; set; }
    public int DeltaT { get; set; } = 1;
    public double Beta1 { get; set; } = 0.85;
    public double Beta2 { get; set; } = 0.85;
    public double OrthRegWeight { get; set; } = 0.5;
    /// <summary>Total training steps; required (the budget schedule is defined over it).</summary>
    public int? TotalStep { get; set; }
    public Dictionary<string, bool[]>? RankPattern { get; set; }

    public bool InitWeights => InitLoraWeights is not JsonValue v || !v.TryGetValue<bool>(out var b) || b;

    public override void Validate()
    {
        if (TotalStep is not int total || total <= 0)
            throw Bad($"'total_step' must be a positive integer (the number of training steps the rank budget is scheduled over), got {TotalStep?.ToString() ?? "null"}");
        if (Tinit < 0 || Tfinal < 0) throw Bad($"'tinit' and 'tfinal' must be >= 0, got {Tinit} and {Tfinal}");
        if (Tinit >= total - Tfinal)
            throw Bad($"'tinit' ({Tinit}) must be smaller than 'total_step' - 'tfinal' ({total} - {Tfinal} = {total - Tfinal}); there would be no step to prune ranks in");
        if (InitR <= 0) throw Bad($"'init_r' must be a positive integer, got {InitR}");
        if (TargetR <= 0) throw Bad($"'target_r' must be a positive integer, got {TargetR}");
        if (DeltaT <= 0) throw Bad($"'deltaT' must be a positive integer, got {DeltaT}");
        if (Beta1 is < 0 or >= 1 || Beta2 is < 0 or >= 1) throw Bad($"'beta1' and 'beta2' must be in [0, 1), got {Beta1} and {Beta2}");
        if (OrthRegWeight < 0) throw Bad($"'orth_reg_weight' must be >= 0, got {OrthRegWeight}");
        ValidateShared();
        if (UseDora) throw Bad("AdaLoRA does not support DoRA ('use_dora' must be false)");
        if (LoftqConfig is JsonObject { Count: > 0 }) throw Bad("AdaLoRA does not support LoftQ ('loftq_config' must be empty)");
    }

    /// <summary>The keep-flags for a module, accepting keys with or without the adapter name (PEFT strips it on save).</summary>
    public bool[]? RankPatternFor(string modulePath, string adapter) =>
        RankPattern is null ? null
        : RankPattern.TryGetValue($"{modulePath}.lora_E", out var k) ? k
        : RankPattern.TryGetValue($"{modulePath}.lora_E.{adapter}", out k) ? k : null;

    protected override void WriteFields(JsonObject o)
    {
        WriteShared(o);
        o["target_r"] = TargetR;
        o["init_r"] = InitR;
        o["tinit"] = Tinit;
        o["tfinal"] = Tfinal;
        o["deltaT"] = DeltaT;
        o["beta1"] = Beta1;
        o["beta2"] = Beta2;
        o["orth_reg_weight"] = OrthRegWeight;
        o["total_step"] = TotalStep;
        o["rank_pattern"] = RankPattern is null ? null
            : new JsonObject(RankPattern.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonArray(kv.Value.Select(b => (JsonNode?)b).ToArray()))));
    }

    protected override void ReadFields(JsonFieldReader r)
    {
        ReadShared(r);
        TargetR = r.Int("target_r") ?? 8;
        InitR = r.Int("init_r") ?? 12;
        Tinit = r.Int("tinit") ?? 0;
        Tfinal = r.Int("tfinal") ?? 0;
        DeltaT = r.Int("deltaT") ?? 1;
        Beta1 = r.Double("beta1") ?? 0.85;
        Beta2 = r.Double("beta2") ?? 0.85;
        OrthRegWeight = r.Double("orth_reg_weight") ?? 0.5;
        TotalStep = r.Int("total_step");
        RankPattern = ReadRankPattern(r);
    }

    private static Dictionary<string, bool[]>? ReadRankPattern(JsonFieldReader r)
    {
        var node = r.Raw("rank_pattern");
        if (node is null) return null;
        if (node is not JsonObject o) throw r.Error("rank_pattern", $"must be null or an object of boolean lists, got {node.ToJsonString()}");
        var result = new Dictionary<string, bool[]>();
        foreach (var (key, value) in o)
        {
            if (value is not JsonArray a || !a.All(x => x is JsonValue v && v.TryGetValue<bool>(out _)))
                throw r.Error($"rank_pattern.{key}", $"must be a list of booleans (one keep flag per initial rank), got {value?.ToJsonString() ?? "null"}");
            result[key] = a.Select(x => x!.GetValue<bool>()).ToArray();
        }
        return result;
    }
}
