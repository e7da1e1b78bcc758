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
    private readonly float[] _slopes;

    public BloomConfig Typed { get; }

    public BloomForCausalLM(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(BloomForCausalLM), config, TaskType.CausalLM, device, dtype)
    {
        Typed = BloomConfig.From(config);
        transformer = new BloomBackbone(Typed, device, dtype);
        lm_head = new LinearLayer(transformer.word_embeddings.weight);
        _slopes = BloomConfig.AlibiSlopes(Typed.NumHeads);
        RegisterComponents();
    }

    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => transformer.word_embeddings;
    public override IReadOnlyCollection<string> TiedParameterNames => ["lm_head.weight"];

    public override ModelOutput Forward(ForwardArgs args)
    {
        using var scope = torch.NewDisposeScope();
        var embeds = args.InputsEmbeds ?? transformer.word_embeddings.forward(args.InputIds ?? throw new ArgumentException("InputIds or InputsEmbeds is required"));
        long b = embeds.shape[0], s = embeds.shape[1];
        long past = args.Cache?.Length ?? 0;
        var mask = args.AttentionMask ?? torch.ones(b, past + s, ScalarType.Int64, embeds.device);
        var hidden = transformer.word_embeddings_layernorm.forward(embeds);
        // ALiBi: slope_h · (key position), key positions counted over the mask so padding does not shift them.
        var keyPos = ((mask.cumsum(1, ScalarType.Int64) - 1) * mask).to(ScalarType.Float32);
        var slopes = torch.tensor(_slopes, ScalarType.Float32, embeds.device).view(1, -1, 1, 1);
        var alibi = (slopes * keyPos.view(b, 1, 1, -1)).to(hidden.dtype);
        var additive = AttentionOps.CausalMask(mask, b, s, past, hidden.dtype, hidden.device);
        var ctx = new BloomContext(additive, alibi, args.Cache);
        var states = args.OutputHiddenStates ? new List<Tensor>() : null;
        foreach (var block in transformer.h)
        {
            states?.Add(hidden.alias());
            hidden = block.forward(hidden, ctx);
        }
        hidden = transformer.ln_f.forward(hidden);
        states?.Add(hidden.alias());
        var logits = lm_head.forward(hidden).to(ScalarType.Float32);
        return new ModelOutput
        {
            Logits = logits.MoveToOuterDisposeScope(),
            LastHiddenState = hidden.MoveToOuterDisposeScope(),
            HiddenStates = states?.Select(t => t.MoveToOuterDisposeScope()).ToList(),
        };
    }
}
