using System.Text.Json.Nodes;

using Peft.Core.IO;
using Peft.Core.Models;

namespace Peft.Core.Configs;

/// <summary>
/// <c>LoraConfig</c> with PEFT's field names and defaults (r=8, lora_alpha=8, dropout 0, bias "none" ...).
/// <c>init_lora_weights</c> is true/false or one of "gaussian", "pissa", "pissa_niter_[k]", "olora".
/// </summary>
public sealed class LoraConfig : LoraFamilyConfig
{
    public override string PeftType => "LORA";

    public bool LoraBias { get; set; }
    public Dictionary<string, double> RankPattern { get; set; } = new();

    public string InitMode => InitLoraWeights is JsonValue v && v.TryGetValue<bool>(out var b)
        ? (b ? "true" : "false")
        : InitLoraWeights.GetValue<string>();

    public override void Validate()
    {
        if (R <= 0) throw Bad($"'r' must be a positive integer, got {R}");
        ValidateShared();
        string init = InitMode;
        bool knownInit = init is "true" or "false" or "gaussian" or "pissa" or "olora"
            || (init.StartsWith("pissa_niter_", StringComparison.Ordinal) && int.TryParse(init["pissa_niter_".Length..], out var niter) && niter > 0);
        if (!knownInit) throw Bad($"'init_lora_weights' \"{init}\" is not supported (true, false, gaussian, pissa, pissa_niter_K, olora)");
        if (LoraBias && UseDora) throw Bad("'lora_bias' cannot be used together with 'use_dora'");
        if (LoraBias && init is not ("true" or "false")) throw Bad("'lora_bias' requires 'init_lora_weights' true or false");
        if (LoftqConfig is JsonObject { Count: > 0 }) throw Bad("'loftq_config' is not supported by this engine");
        foreach (var (k, v) in RankPattern)
            if (v <= 0 || v != Math.Floor(v)) throw Bad($"'rank_pattern.{k}' must be a positive integer, got {v}");
    }

    protected override void WriteFields(JsonObject o)
    {
        WriteShared(o);
        o["lora_bias"] = LoraBias;
        o["rank_pattern"] = Map(RankPattern);
    }

    protected override void ReadFields(JsonFieldReader r)
    {
        ReadShared(r);
        LoraBias = r.Bool("lora_bias") ?? false;
        RankPattern = r.NumberMap("rank_pattern");
    }
}
