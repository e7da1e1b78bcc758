using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Llama;

/// <summary>transformers' <c>LlamaForCausalLM</c> (also Mistral and Qwen2): parameters <c>model.*</c> and <c>lm_head.weight</c>.</summary>
public sealed class LlamaForCausalLM : PretrainedModel
{
#pragma warning disable IDE1006
    private readonly LlamaBackbone model;
    private readonly LinearLayer lm_head;
#pragma warning restore IDE1006

    public LlamaConfig Typed { get; }

    public LlamaForCausalLM(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(LlamaForCausalLM), config, TaskType.CausalLM, device, dtype)
    {
        Typed = LlamaConfig.From(config);
        model = new LlamaBackbone(Typed, Dropout, device, dtype);
        lm_head = Typed.TieWordEmbeddings
            ? new LinearLayer(model.embed_tokens.weight)
            : new LinearLayer(Typed.HiddenSize, Typed.VocabSize, false, device, dtype);
        RegisterComponents();
    }

    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumKvHeads;
    public override int HeadDim => Typed.HeadDim;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => model.embed_tokens;
    public override IReadOnlyCollection<string> TiedParameterNames =>
        Typed.TieWordEmbeddings ? ["lm_head.weight"] : [];

    public override ModelOutput Forward(ForwardArgs args)
    {
        using var scope = torch.NewDisposeScope();
        var encoded = model.Encode(args, RunDecoderLayer);
        return TaskHeads.Output(lm_head.forward(TaskHeads.ForLogits(encoded.Hidden, args)), encoded);
    }
}
