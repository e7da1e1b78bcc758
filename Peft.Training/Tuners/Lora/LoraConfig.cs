using System.Text.Json.Nodes;

namespace Peft.Training.Tuners.Lora;

/// <summary>
/// <c>LoraConfig</c> with PEFT's field names and defaults (r=8, lora_alpha=8, dropout 0, bias "none" ...).
/// <c>init_lora_weights</c> is true/false or one of "gaussian", "pissa", "pissa_niter_[k]", "olora".
/// </summary>
public sealed class LoraConfig : PeftConfig
{
    public override string PeftType => "LORA";

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
    public bool LoraBias { get; set; }
    /// <summary>true, false, "gaussian", "pissa", "pissa_niter_K", "olora".</summary>
    public JsonNode InitLoraWeights { get; set; } = JsonValue.Create(true);
    public List<int>? LayersToTransform { get; set; }
    public StringOrList? LayersPattern { get; set; }
    public Dictionary<string, double> RankPattern { get; set; } = new();
    public Dictionary<string, double> AlphaPattern { get; set; } = new();

    /// <summary>Fields we read and write back verbatim without acting on them (so files round-trip).</summary>
    private JsonNode? _loftqConfig, _layerReplication, _megatronConfig;
    private string _megatronCore = "megatron.core";

    public string InitMode => InitLoraWeights is JsonValue v && v.TryGetValue<bool>(out var b)
        ? (b ? "true" : "false")
        : InitLoraWeights.GetValue<string>();

    public override void Validate()
    {
        if (R <= 0) throw new PeftConfigException($"LoraConfig: 'r' must be a positive integer, got {R}");
        if (LoraDropout < 0 || LoraDropout >= 1) throw new PeftConfigException($"LoraConfig: 'lora_dropout' must be in [0, 1), got {LoraDropout}");
        if (Bias is not ("none" or "all" or "lora_only")) throw new PeftConfigException($"LoraConfig: 'bias' must be \"none\", \"all\" or \"lora_only\", got \"{Bias}\"");
        string init = InitMode;
        bool knownInit = init is "true" or "false" or "gaussian" or "pissa" or "olora"
            || (init.StartsWith("pissa_niter_", StringComparison.Ordinal) && int.TryParse(init["pissa_niter_".Length..], out var niter) && niter > 0);
        if (!knownInit) throw new PeftConfigException($"LoraConfig: 'init_lora_weights' \"{init}\" is not supported (true, false, gaussian, pissa, pissa_niter_K, olora)");
        if (TargetModules?.Pattern is not null && (LayersToTransform is not null || LayersPattern is not null))
            throw new PeftConfigException("LoraConfig: 'layers_to_transform' and 'layers_pattern' cannot be used when 'target_modules' is a regex string");
        if (LayersPattern is not null && LayersToTransform is null)
            throw new PeftConfigException("LoraConfig: 'layers_pattern' requires 'layers_to_transform'");
        if (LoraBias && UseDora) throw new PeftConfigException("LoraConfig: 'lora_bias' cannot be used together with 'use_dora'");
        if (LoraBias && init is not ("true" or "false")) throw new PeftConfigException("LoraConfig: 'lora_bias' requires 'init_lora_weights' true or false");
        if (_layerReplication is not null and not JsonArray { Count: 0 })
            throw new PeftConfigException("LoraConfig: 'layer_replication' is not supported by this engine");
        if (_loftqConfig is JsonObject { Count: > 0 })
            throw new PeftConfigException("LoraConfig: 'loftq_config' is not supported by this engine");
        foreach (var (k, v) in RankPattern)
            if (v <= 0 || v != Math.Floor(v)) throw new PeftConfigException($"LoraConfig: 'rank_pattern.{k}' must be a positive integer, got {v}");
    }

    protected override void WriteFields(JsonObject o)
    {
        o["r"] = R;
        o["lora_alpha"] = Num(LoraAlpha);
        o["lora_dropout"] = LoraDropout;
        o["target_modules"] = TargetModules?.ToNode();
        o["exclude_modules"] = ExcludeModules?.ToNode();
        o["fan_in_fan_out"] = FanInFanOut;
        o["bias"] = Bias;
        o["use_rslora"] = UseRslora;
        o["use_dora"] = UseDora;
        o["lora_bias"] = LoraBias;
        o["init_lora_weights"] = InitLoraWeights.DeepClone();
        o["layers_to_transform"] = LayersToTransform is null ? null : new JsonArray(LayersToTransform.Select(i => (JsonNode?)i).ToArray());
        o["layers_pattern"] = LayersPattern?.ToNode();
        o["rank_pattern"] = Map(RankPattern);
        o["alpha_pattern"] = Map(AlphaPattern);
        o["loftq_config"] = _loftqConfig?.DeepClone() ?? new JsonObject();
        o["layer_replication"] = _layerReplication?.DeepClone();
        o["megatron_config"] = _megatronConfig?.DeepClone();
        o["megatron_core"] = _megatronCore;
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
        LoraBias = r.Bool("lora_bias") ?? false;
        var init = r.Raw("init_lora_weights");
        if (init is JsonValue iv && (iv.TryGetValue<bool>(out _) || iv.TryGetValue<string>(out _))) InitLoraWeights = iv;
        else if (init is not null) throw r.Error("init_lora_weights", $"must be true, false or a string, got {init.ToJsonString()}");
        LayersToTransform = r.IntOrIntList("layers_to_transform");
        LayersPattern = r.StringOrList("layers_pattern");
        RankPattern = r.NumberMap("rank_pattern");
        AlphaPattern = r.NumberMap("alpha_pattern");
        _loftqConfig = r.Raw("loftq_config");
        _layerReplication = r.Raw("layer_replication");
        _megatronConfig = r.Raw("megatron_config");
        _megatronCore = r.String("megatron_core") ?? "megatron.core";
    }

    /// <summary>Integers as JSON ints (lora_alpha: 8, not 8.0), like Python writes them.</summary>
    internal static JsonNode Num(double v) => v == Math.Floor(v) && Math.Abs(v) < int.MaxValue ? JsonValue.Create((int)v) : JsonValue.Create(v);

    internal static JsonObject Map(Dictionary<string, double> d)
    {
        var o = new JsonObject();
        foreach (var (k, v) in d) o[k] = Num(v);
        return o;
    }
}
