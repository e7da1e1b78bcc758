using System.Text.Json.Nodes;

using Peft.Core.IO;
using Peft.Core.Models;

namespace Peft.Core.Configs;

/// <summary>
/// The fields LoRA and AdaLoRA share (PEFT's <c>AdaLoraConfig</c> extends <c>LoraConfig</c>): rank, alpha, dropout,
/// targeting, bias, rsLoRA/DoRA flags, init, alpha_pattern, plus the fields this engine round-trips without acting on.
/// </summary>
public abstract class LoraFamilyConfig : PeftConfig
{
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
    /// <summary>true, false, "gaussian", "pissa", "pissa_niter_K", "olora".</summary>
    public JsonNode InitLoraWeights { get; set; } = JsonValue.Create(true);
    public List<int>? LayersToTransform { get; set; }
    public StringOrList? LayersPattern { get; set; }
    public Dictionary<string, double> AlphaPattern { get; set; } = new();

    /// <summary>Fields we read and write back verbatim without acting on them (so files round-trip).</summary>
    private protected JsonNode? LoftqConfig, LayerReplication;
    private JsonNode? _megatronConfig;
    private string _megatronCore = "megatron.core";

    private protected string ConfigName => GetType().Name;

    private protected PeftConfigException Bad(string message) => new($"{ConfigName}: {message}");

    /// <summary>Checks shared by LoRA and AdaLoRA; each adds its own.</summary>
    private protected void ValidateShared()
    {
        if (LoraDropout is < 0 or >= 1) throw Bad($"'lora_dropout' must be in [0, 1), got {LoraDropout}");
        if (Bias is not ("none" or "all" or "lora_only")) throw Bad($"'bias' must be \"none\", \"all\" or \"lora_only\", got \"{Bias}\"");
        if (TargetModules?.Pattern is not null && (LayersToTransform is not null || LayersPattern is not null))
            throw Bad("'layers_to_transform' and 'layers_pattern' cannot be used when 'target_modules' is a regex string");
        if (LayersPattern is not null && LayersToTransform is null) throw Bad("'layers_pattern' requires 'layers_to_transform'");
        if (LayerReplication is not null and not JsonArray { Count: 0 }) throw Bad("'layer_replication' is not supported by this engine");
    }

    private protected void WriteShared(JsonObject o)
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
        o["init_lora_weights"] = InitLoraWeights.DeepClone();
        o["layers_to_transform"] = LayersToTransform is null ? null : new JsonArray(LayersToTransform.Select(i => (JsonNode?)i).ToArray());
        o["layers_pattern"] = LayersPattern?.ToNode();
        o["alpha_pattern"] = Map(AlphaPattern);
        o["loftq_config"] = LoftqConfig?.DeepClone() ?? new JsonObject();
        o["layer_replication"] = LayerReplication?.DeepClone();
        o["megatron_config"] = _megatronConfig?.DeepClone();
        o["megatron_core"] = _megatronCore;
    }

    private protected void ReadShared(JsonFieldReader r)
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
        LoftqConfig = r.Raw("loftq_config");
        LayerReplication = r.Raw("layer_replication");
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
