using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Gpt2;

/// <summary>GPT-2 with a task head instead of the LM head: <c>transformer.*</c> plus the head's own weights.</summary>
public abstract class Gpt2HeadModel : PretrainedModel
{
    private protected Gpt2HeadModel(string name, ModelConfig config, TaskType task, Device device, ScalarType dtype)
        : base(name, config, task, device, dtype)
    {
        Typed = Gpt2Config.From(config);
        Transformer = new Gpt2Backbone(Typed, device, dtype);
        register_module("transformer", Transformer);
    }

    private protected Gpt2Backbone Transformer { get; }
    public Gpt2Config Typed { get; }
    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => Transformer.wte;

    public override void InitWeights(long seed)
    {
        base.InitWeights(seed);
        Gpt2Backbone.ScaleResidualInit(this, Typed, seed);
    }

    protected override string? AlternateCheckpointKey(string parameterName) => Gpt2Backbone.BareKey(parameterName);

    /// <summary>The head is new when fine-tuning from a language-model checkpoint; it is initialised then.</summary>
    protected override bool IsOptionalInCheckpoint(string name) => !name.StartsWith("transformer.", StringComparison.Ordinal);
}

/// <summary><c>GPT2ForSequenceClassification</c>: <c>score</c> (no bias) at the last non-pad token; logits [batch, labels].</summary>
public sealed class Gpt2ForSequenceClassification : Gpt2HeadModel
{
    private readonly LinearLayer _score;
    private readonly int? _padTokenId;

    public Gpt2ForSequenceClassification(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(Gpt2ForSequenceClassification), config, TaskType.SequenceClassification, device, dtype)
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

/// <summary><c>GPT2ForTokenClassification</c>: dropout → <c>classifier</c> on every token; logits [batch, seq, labels].</summary>
public sealed class Gpt2ForTokenClassification : Gpt2HeadModel
{
    private readonly LinearLayer _classifier;
    private readonly double _dropout;

    public Gpt2ForTokenClassification(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(Gpt2ForTokenClassification), config, TaskType.TokenClassification, device, dtype)
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
