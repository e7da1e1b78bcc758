using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Bloom;

/// <summary>transformers' <c>BloomForCausalLM</c>: ALiBi attention, fused QKV, embedding layer norm, tied head.</summary>
public sealed class BloomForCausalLM : PretrainedModel
{
#pragma warning disable IDE1006
    private readonly BloomBackbone transformer;
    private readonly LinearLayer lm_head;
#pragma warning restore IDE1006

    public BloomConfig Typed { get; }

    public BloomForCausalLM(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(BloomForCausalLM), config, TaskType.CausalLM, device, dtype)
    {
        Typed = BloomConfig.From(config);
        transformer = new BloomBackbone(Typed, Dropout, device, dtype);
        lm_head = new LinearLayer(transformer.word_embeddings.weight);
        RegisterComponents();
    }

    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => transformer.word_embeddings;
    public override IReadOnlyCollection<string> TiedParameterNames => ["lm_head.weight"];

    protected override string? AlternateCheckpointKey(string parameterName) => BloomBackbone.BareKey(parameterName);

    public override ModelOutput Forward(ForwardArgs args)
    {
        using var scope = torch.NewDisposeScope();
        var encoded = transformer.Encode(args, RunDecoderLayer);
        return TaskHeads.Output(lm_head.forward(TaskHeads.ForLogits(encoded.Hidden, args)), encoded);
    }
}
