using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Llama;

/// <summary>
/// transformers' <c>LlamaForSequenceClassification</c> (also Mistral and Qwen2): <c>model.*</c> and <c>score</c>. A
/// causal-LM checkpoint loads into it with a freshly initialised <c>score</c>. transformers 4.40 has no Llama token
/// classifier, so neither does this project.
/// </summary>
public sealed class LlamaForSequenceClassification : DecoderHeadModel
{
    private readonly LlamaBackbone _model;

    public LlamaForSequenceClassification(ModelConfig config, Device device, ScalarType dtype)
        : base("Llama", config, TaskType.SequenceClassification, device, dtype)
    {
        Typed = LlamaConfig.From(config);
        _model = new LlamaBackbone(Typed, Dropout, device, dtype);
        register_module("model", _model);
        AddHead(Typed.HiddenSize, device, dtype);
    }

    public LlamaConfig Typed { get; }
    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumKvHeads;
    public override int HeadDim => Typed.HeadDim;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => _model.embed_tokens;

    private protected override BackboneOutput Encode(ForwardArgs args) => _model.Encode(args, RunDecoderLayer);
}
