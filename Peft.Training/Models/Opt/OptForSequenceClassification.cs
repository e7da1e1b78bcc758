using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Opt;

/// <summary>
/// transformers' <c>OPTForSequenceClassification</c>: <c>model.decoder.*</c> and <c>score</c> (word_embed_proj_dim →
/// labels, no bias) at the last non-pad token; logits [batch, labels]. transformers 4.40 has no OPT token classifier.
/// </summary>
public sealed class OptForSequenceClassification : PretrainedModel
{
#pragma warning disable IDE1006
    private readonly OptModel model;
    private readonly LinearLayer score;
#pragma warning restore IDE1006
    private readonly int? _padTokenId;

    public OptConfig Typed { get; }

    public OptForSequenceClassification(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(OptForSequenceClassification), config, TaskType.SequenceClassification, device, dtype)
    {
        Typed = OptConfig.From(config);
        model = new OptModel(Typed, device, dtype);
        score = new LinearLayer(Typed.WordEmbedProjDim, TaskHeads.NumLabels(config), false, device, dtype);
        _padTokenId = TaskHeads.PadTokenId(config);
        RegisterComponents();
    }

    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => model.decoder.embed_tokens;
    protected override bool IsOptionalInCheckpoint(string name) => name.StartsWith("score.", StringComparison.Ordinal);

    public override ModelOutput Forward(ForwardArgs args)
    {
        using var scope = torch.NewDisposeScope();
        var encoded = model.Encode(args, RunDecoderLayer);
        var pooled = TaskHeads.PoolLastNonPad(score.forward(encoded.Hidden), args.InputsEmbeds is null ? args.InputIds : null, _padTokenId);
        return TaskHeads.Output(pooled, encoded);
    }
}
