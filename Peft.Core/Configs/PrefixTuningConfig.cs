using System.Text.Json.Nodes;

using Peft.Core.IO;
using Peft.Core.Models;

namespace Peft.Core.Configs;

/// <summary>
/// PEFT's <c>PrefixTuningConfig</c> (prefix tuning, also P-tuning v2): per-layer key/value prefixes of
/// <c>num_virtual_tokens</c> positions, optionally reparameterised by an MLP while training (<c>prefix_projection</c>).
/// </summary>
public sealed class PrefixTuningConfig : PromptLearningConfig
{
    public override string PeftType => "PREFIX_TUNING";

    /// <summary>Hidden size of the projection MLP; defaults to token_dim.</summary>
    public int? EncoderHiddenSize { get; set; }
    public bool PrefixProjection { get; set; }

    public override void Validate()
    {
        base.Validate();
        Positive(EncoderHiddenSize, "encoder_hidden_size");
    }

    public override void FillFromModel(ModelShape model)
    {
        base.FillFromModel(model);
        // Grouped-query attention caches num_key_value_heads heads, so the prefix is that many heads wide
        // (PEFT >= 0.12 does this; 0.10 did not, and its GQA adapters set these values by hand).
        if (model.Config.Has("num_key_value_heads") || model.NumKeyValueHeads != model.NumAttentionHeads)
        {
            int headDim = model.Config.TryGetInt("head_dim") ?? TokenDim!.Value / NumAttentionHeads!.Value;
            TokenDim = headDim * model.NumKeyValueHeads;
            NumAttentionHeads = model.NumKeyValueHeads;
        }
        EncoderHiddenSize ??= TokenDim;
    }

    protected override void WriteMethodFields(JsonObject o)
    {
        o["encoder_hidden_size"] = EncoderHiddenSize;
        o["prefix_projection"] = PrefixProjection;
    }

    protected override void ReadMethodFields(JsonFieldReader r)
    {
        EncoderHiddenSize = r.Int("encoder_hidden_size");
        PrefixProjection = r.Bool("prefix_projection") ?? false;
    }
}
