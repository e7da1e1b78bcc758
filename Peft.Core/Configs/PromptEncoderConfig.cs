using System.Text.Json.Nodes;

using Peft.Core.IO;
using Peft.Core.Models;

namespace Peft.Core.Configs;

/// <summary>The head that reparameterises P-tuning's table while training.</summary>
public enum EncoderReparameterizationType { Mlp, Lstm }

/// <summary>PEFT's <c>PromptEncoderConfig</c> (P-tuning v1, peft_type P_TUNING).</summary>
public sealed class PromptEncoderConfig : PromptLearningConfig
{
    public override string PeftType => "P_TUNING";

    public EncoderReparameterizationType EncoderReparameterizationType { get; set; } = EncoderReparameterizationType.Mlp;
    /// <summary>Hidden size of the head; defaults to token_dim.</summary>
    public int? EncoderHiddenSize { get; set; }
    /// <summary>LSTM layers (the MLP always has two hidden layers, as in PEFT).</summary>
    public int EncoderNumLayers { get; set; } = 2;
    /// <summary>Dropout between LSTM layers.</summary>
    public double EncoderDropout { get; set; }

    public override void Validate()
    {
        base.Validate();
        Positive(EncoderHiddenSize, "encoder_hidden_size");
        if (EncoderNumLayers <= 0) throw new PeftConfigException($"PromptEncoderConfig: 'encoder_num_layers' must be a positive integer, got {EncoderNumLayers}");
        if (EncoderDropout < 0 || EncoderDropout >= 1) throw new PeftConfigException($"PromptEncoderConfig: 'encoder_dropout' must be in [0, 1), got {EncoderDropout}");
    }

    public override void FillFromModel(ModelShape model)
    {
        base.FillFromModel(model);
        EncoderHiddenSize ??= TokenDim;
    }

    protected override void WriteMethodFields(JsonObject o)
    {
        o["encoder_reparameterization_type"] = EncoderReparameterizationType == EncoderReparameterizationType.Lstm ? "LSTM" : "MLP";
        o["encoder_hidden_size"] = EncoderHiddenSize;
        o["encoder_num_layers"] = EncoderNumLayers;
        o["encoder_dropout"] = EncoderDropout;
    }

    protected override void ReadMethodFields(JsonFieldReader r)
    {
        EncoderReparameterizationType = r.String("encoder_reparameterization_type") switch
        {
            null or "MLP" => EncoderReparameterizationType.Mlp,
            "LSTM" => EncoderReparameterizationType.Lstm,
            var other => throw r.Error("encoder_reparameterization_type", $"must be \"MLP\" or \"LSTM\", got \"{other}\""),
        };
        EncoderHiddenSize = r.Int("encoder_hidden_size");
        EncoderNumLayers = r.Int("encoder_num_layers") ?? 2;
        EncoderDropout = r.Double("encoder_dropout") ?? 0.0;
    }
}
