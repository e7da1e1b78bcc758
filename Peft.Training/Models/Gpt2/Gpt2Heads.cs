using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Gpt2;

/// <summary><c>GPT2ForSequenceClassification</c> / <c>GPT2ForTokenClassification</c>: <c>transformer.*</c> plus the head.</summary>
public sealed class Gpt2HeadModel : DecoderHeadModel
{
    private readonly Gpt2Backbone _transformer;

    public Gpt2HeadModel(ModelConfig config, TaskType task, Device device, ScalarType dtype) : base("Gpt2", config, task, device, dtype)
    {
        Typed = Gpt2Config.From(config);
        _transformer = new Gpt2Backbone(Typed, Dropout, device, dtype);
        register_module("transformer", _transformer);
        AddHead(Typed.HiddenSize, device, dtype, "hidden_dropout");
    }

    public Gpt2Config Typed { get; }
    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => _transformer.wte;

    private protected override BackboneOutput Encode(ForwardArgs args) => _transformer.Encode(args, RunDecoderLayer);

    public override void InitWeights(long seed)
    {
        base.InitWeights(seed);
        Gpt2Backbone.ScaleResidualInit(this, Typed, seed);
    }

    protected override string? AlternateCheckpointKey(string parameterName) => Gpt2Backbone.BareKey(parameterName);
}
