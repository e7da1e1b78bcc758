using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Opt;

/// <summary>
/// transformers' <c>OPTForSequenceClassification</c>: <c>model.decoder.*</c> and <c>score</c> (word_embed_proj_dim →
/// labels). transformers 4.40 has no OPT token classifier.
/// </summary>
public sealed class OptForSequenceClassification : DecoderHeadModel
{
    private readonly OptModel _model;

    public OptForSequenceClassification(ModelConfig config, Device device, ScalarType dtype)
        : base("Opt", config, TaskType.SequenceClassification, device, dtype)
    {
        Typed = OptConfig.From(config);
        _model = new OptModel(Typed, Dropout, device, dtype);
        register_module("model", _model);
        AddHead(Typed.WordEmbedProjDim, device, dtype);
    }

    public OptConfig Typed { get; }
    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => _model.decoder.embed_tokens;

    private protected override BackboneOutput Encode(ForwardArgs args) => _model.Encode(args, RunDecoderLayer);
}
