using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Bloom;

/// <summary>BLOOM with a task head instead of the LM head: <c>transformer.*</c> plus the head's own weights.</summary>
public abstract class BloomHeadModel : PretrainedModel
{
    private protected BloomHeadModel(string name, ModelConfig config, TaskType task, Device device, ScalarType dtype)
        : base(name, config, task, device, dtype)
    {
        Typed = BloomConfig.From(config);
        Transformer = new BloomBackbone(Typed, device, dtype);
        register_module("transformer", Transformer);
    }

    private protected BloomBackbone Transformer { get; }
    public BloomConfig Typed { get; }
    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => Transformer.word_embeddings;

    protected override string? AlternateCheckpointKey(string parameterName) => BloomBackbone.BareKey(parameterName);

    /// <summary>The head is new when fine-tuning from a language-model checkpoint; it is initialised then.</summary>
    protected override bool IsOptionalInCheckpoint(string name) => !name.StartsWith("transformer.", StringComparison.Ordinal);
}

/// <summary><c>BloomForSequenceClassification</c>: <c>score</c> (no bias) at the last non-pad token; logits [batch, labels].</summary>
public sealed class BloomForSequenceClassification : BloomHeadModel
{
    private readonly LinearLayer _score;
    private readonly int? _padTokenId;

    public BloomForSequenceClassification(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(BloomForSequenceClassification), config, TaskType.SequenceClassification, device, dtype)
    {
        _score = new LinearLayer(Typed.HiddenSize, TaskHeads.NumLabels(config), false, device, dtype);
        register_module("score", _score);
        _padTokenId = TaskHeads.PadTokenId(config);
    }

    public override ModelOutput Forward(ForwardArgs args)
    {
        using var scope = torch.NewDisposeScope();
        var encoded = Transformer.Encode(args, RunDecoderLayer);
        var pooled = TaskHeads.PoolLastNonPad(_score.forward(encoded.Hidden), args.InputsEmbeds is null ? args.InputIds : null, _padTokenId);
        return TaskHeads.Output(pooled, encoded);
    }
}

/// <summary><c>BloomForTokenClassification</c>: dropout → <c>classifier</c> on every token; logits [batch, seq, labels].</summary>
public sealed class BloomForTokenClassification : BloomHeadModel
{
    private readonly LinearLayer _classifier;
    private readonly double _dropout;

    public BloomForTokenClassification(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(BloomForTokenClassification), config, TaskType.TokenClassification, device, dtype)
    {
        _classifier = new LinearLayer(Typed.HiddenSize, TaskHeads.NumLabels(config), true, device, dtype);
        register_module("classifier", _classifier);
        _dropout = TaskHeads.ClassifierDropout(config, "hidden_dropout");
    }

    public override ModelOutput Forward(ForwardArgs args)
    {
        using var scope = torch.NewDisposeScope();
        var encoded = Transformer.Encode(args, RunDecoderLayer);
        var logits = _classifier.forward(nn.functional.dropout(encoded.Hidden, _dropout, training));
        return TaskHeads.Output(logits, encoded);
    }
}
