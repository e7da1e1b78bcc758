using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Llama;

/// <summary>
/// transformers' <c>LlamaForSequenceClassification</c> (also Mistral and Qwen2): <c>model.*</c> and <c>score</c> (no
/// bias) read at the last non-pad token (<see cref="TaskHeads.PoolLastNonPad"/>); logits [batch, labels]. A causal-LM
/// checkpoint loads into it with a freshly initialised <c>score</c>.
/// </summary>
public sealed class LlamaForSequenceClassification : PretrainedModel
{
#pragma warning disable IDE1006
    private readonly LlamaBackbone model;
    private readonly LinearLayer score;
#pragma warning restore IDE1006
    private readonly int? _padTokenId;

    public LlamaConfig Typed { get; }

    public LlamaForSequenceClassification(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(LlamaForSequenceClassification), config, TaskType.SequenceClassification, device, dtype)
    {
        Typed = LlamaConfig.From(config);
        model = new LlamaBackbone(Typed, device, dtype);
        score = new LinearLayer(Typed.HiddenSize, TaskHeads.NumLabels(config), false, device, dtype);
        _padTokenId = TaskHeads.PadTokenId(config);
        RegisterComponents();
    }

    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumKvHeads;
    public override int HeadDim => Typed.HeadDim;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => model.embed_tokens;
    protected override bool IsOptionalInCheckpoint(string name) => name.StartsWith("score.", StringComparison.Ordinal);

    public override ModelOutput Forward(ForwardArgs args)
    {
        using var scope = torch.NewDisposeScope();
        var encoded = model.Encode(args, RunDecoderLayer);
        var pooled = TaskHeads.PoolLastNonPad(score.forward(encoded.Hidden), args.InputsEmbeds is null ? args.InputIds : null, _padTokenId);
        return TaskHeads.Output(pooled, encoded);
    }
}
