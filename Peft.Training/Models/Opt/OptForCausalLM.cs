using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Opt;

/// <summary>transformers' <c>OPTForCausalLM</c>: <c>model.decoder.*</c> and <c>lm_head</c> tied to the token embeddings.</summary>
public sealed class OptForCausalLM : PretrainedModel
{
#pragma warning disable IDE1006
    private readonly OptModel model;
    private readonly LinearLayer lm_head;
#pragma warning restore IDE1006

    public OptConfig Typed { get; }

    public OptForCausalLM(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(OptForCausalLM), config, TaskType.CausalLM, device, dtype)
    {
        Typed = OptConfig.From(config);
        model = new OptModel(Typed, Dropout, device, dtype);
        lm_head = Typed.TieWordEmbeddings
            ? new LinearLayer(model.decoder.embed_tokens.weight)
            : new LinearLayer(Typed.WordEmbedProjDim, Typed.VocabSize, false, device, dtype);
        RegisterComponents();
    }

    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => model.decoder.embed_tokens;
    public override IReadOnlyCollection<string> TiedParameterNames => Typed.TieWordEmbeddings ? ["lm_head.weight"] : [];

    public override ModelOutput Forward(ForwardArgs args)
    {
        using var scope = torch.NewDisposeScope();
        var encoded = model.Encode(args, RunDecoderLayer);
        return TaskHeads.Output(lm_head.forward(TaskHeads.ForLogits(encoded.Hidden, args)), encoded);
    }
}
