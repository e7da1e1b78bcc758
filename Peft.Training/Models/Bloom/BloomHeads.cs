using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Bloom;

/// <summary><c>BloomForSequenceClassification</c> / <c>BloomForTokenClassification</c>: <c>transformer.*</c> plus the head.</summary>
public sealed class BloomHeadModel : DecoderHeadModel
{
    private readonly BloomBackbone _transformer;

    public BloomHeadModel(ModelConfig config, TaskType task, Device device, ScalarType dtype) : base("Bloom", config, task, device, dtype)
    {
        Typed = BloomConfig.From(config);
        _transformer = new BloomBackbone(Typed, Dropout, device, dtype);
        register_module("transformer", _transformer);
        AddHead(Typed.HiddenSize, device, dtype, "hidden_dropout");
    }

    public BloomConfig Typed { get; }
    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => _transformer.word_embeddings;

    private protected override BackboneOutput Encode(ForwardArgs args) => _transformer.Encode(args, RunDecoderLayer);

    protected override string? AlternateCheckpointKey(string parameterName) => BloomBackbone.BareKey(parameterName);
}
