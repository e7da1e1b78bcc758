using System.Text.Json.Nodes;
using Peft.Training.Tuners.Lora;

namespace Peft.Training.Tuners.AdaLora;

/// <summary>
/// <c>AdaLoraConfig</c>: the LoRA fields (r is ignored; ranks start at <see cref="InitR"/>) plus the rank-budget
/// schedule. <see cref="RankPattern"/> maps "<c>&lt;module path&gt;.lora_E</c>" to a keep-flag per initial rank; it is
/// written by the rank allocator and tells loading which ranks a checkpoint holds.
/// </summary>
public sealed class AdaLoraConfig : PeftConfig
{
    public override string PeftType => "ADALORA";

    // LoRA fields.
    /// <summary>Unused by AdaLoRA (PEFT keeps LoraConfig's default 8 in the file).</summary>
    public int R { get; set; } = 8;
    public double LoraAlpha { get; set; } = 8;
    public double LoraDropout { get; set; }
    public StringOrList? TargetModules { get; set; }
    public StringOrList? ExcludeModules { get; set; }
    public bool FanInFanOut { get; set; }
    /// <summary>"none", "all" or "lora_only".</summary>
    public string Bias { get; set; } = "none";
    public bool UseRslora { get; set; }
    public bool UseDora { get; set; }
    /// <summary>Truthy (true or any string): E = 0, A, B ~ N(0, 0.02). false: all N(0, 1).</summary>
    public JsonNode InitLoraWeights { get; set; } = JsonValue.Create(true);
    public List<int>? LayersToTransform { get; set; }
    public StringOrList? LayersPattern { get; set; }
    public Dictionary<string, double> AlphaPattern { get; set; } = new();
    private JsonNode? _loftqConfig, _layerReplication, _megatronConfig;
    private string _megatronCore = "megatron.core";

    // AdaLoRA fields.
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
        static PeftConfigException Bad(string message) => new($"AdaLoraConfig: {message}");
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
        if (LoraDropout is < 0 or >= 1) throw Bad($"'lora_dropout' must be in [0, 1), got {LoraDropout}");
        if (Bias is not ("none" or "all" or "lora_only")) throw Bad($"'bias' must be \"none\", \"all\" or \"lora_only\", got \"{Bias}\"");
        if (UseDora) throw Bad("AdaLoRA does not support DoRA ('use_dora' must be false)");
        if (_loftqConfig is JsonObject { Count: > 0 }) throw Bad("AdaLoRA does not support LoftQ ('loftq_config' must be empty)");
        if (_layerReplication is not null and not JsonArray { Count: 0 }) throw Bad("'layer_replication' is not supported by this engine");
        if (TargetModules?.Pattern is not null && (LayersToTransform is not null || LayersPattern is not null))
            throw Bad("'layers_to_transform' and 'layers_pattern' cannot be used when 'target_modules' is a regex string");
        if (LayersPattern is not null && LayersToTransform is null) throw Bad("'layers_pattern' requires 'layers_to_transform'");
    }

    /// <summary>The keep-flags for a module, accepting keys with or without the adapter name (PEFT strips it on save).</summary>
    public bool[]? RankPatternFor(string modulePath, string adapter) =>
        RankPattern is null ? null
        : RankPattern.TryGetValue($"{modulePath}.lora_E", out var k) ? k
        : RankPattern.TryGetValue($"{modulePath}.lora_E.{adapter}", out k) ? k : null;

    protected override void WriteFields(JsonObject o)
    {
        o["r"] = R;
        o["lora_alpha"] = LoraConfig.Num(LoraAlpha);
        o["lora_dropout"] = LoraDropout;
        o["target_modules"] = TargetModules?.ToNode();
        o["exclude_modules"] = ExcludeModules?.ToNode();
        o["fan_in_fan_out"] = FanInFanOut;
        o["bias"] = Bias;
        o["use_rslora"] = UseRslora;
        o["use_dora"] = UseDora;
        o["init_lora_weights"] = InitLoraWeights.DeepClone();
        o["layers_to_transform"] = LayersToTransform is null ? null : new JsonArray(LayersToTransform.Select(i => (JsonNode?)i).ToArray());
        o["layers_pattern"] = LayersPattern?.ToNode();
        o["alpha_pattern"] = LoraConfig.Map(AlphaPattern);
        o["loftq_config"] = _loftqConfig?.DeepClone() ?? new JsonObject();
        o["layer_replication"] = _layerReplication?.DeepClone();
        o["megatron_config"] = _megatronConfig?.DeepClone();
        o["megatron_core"] = _megatronCore;
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
        R = r.Int("r") ?? 8;
        LoraAlpha = r.Double("lora_alpha") ?? 8;
        LoraDropout = r.Double("lora_dropout") ?? 0;
        TargetModules = r.StringOrList("target_modules");
        ExcludeModules = r.StringOrList("exclude_modules");
        FanInFanOut = r.Bool("fan_in_fan_out") ?? false;
        Bias = r.String("bias") ?? "none";
        UseRslora = r.Bool("use_rslora") ?? false;
        UseDora = r.Bool("use_dora") ?? false;
        var init = r.Raw("init_lora_weights");
        if (init is JsonValue iv && (iv.TryGetValue<bool>(out _) || iv.TryGetValue<string>(out _))) InitLoraWeights = iv;
        else if (init is not null) throw r.Error("init_lora_weights", $"must be true, false or a string, got {init.ToJsonString()}");
        LayersToTransform = r.IntOrIntList("layers_to_transform");
        LayersPattern = r.StringOrList("layers_pattern");
        AlphaPattern = r.NumberMap("alpha_pattern");
        _loftqConfig = r.Raw("loftq_config");
        _layerReplication = r.Raw("layer_replication");
        _megatronConfig = r.Raw("megatron_config");
        _megatronCore = r.String("megatron_core") ?? "megatron.core";
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
