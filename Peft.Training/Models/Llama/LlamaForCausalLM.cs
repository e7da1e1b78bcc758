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
    private readonly RotaryEmbedding _rotary;

    public LlamaConfig Typed { get; }

    public LlamaForCausalLM(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(LlamaForCausalLM), config, TaskType.CausalLM, device, dtype)
    {
        Typed = LlamaConfig.From(config);
        model = new LlamaBackbone(Typed, device, dtype);
        lm_head = Typed.TieWordEmbeddings
            ? new LinearLayer(model.embed_tokens.weight)
            : new LinearLayer(Typed.HiddenSize, Typed.VocabSize, false, device, dtype);
        _rotary = new RotaryEmbedding(Typed.HeadDim, Typed.RopeTheta, Typed.RopeScaling);
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
        var hidden = args.InputsEmbeds ?? model.embed_tokens.forward(args.InputIds ?? throw new ArgumentException("InputIds or InputsEmbeds is required"));
        long b = hidden.shape[0], s = hidden.shape[1];
        long past = args.Cache?.Length ?? 0;
        var positions = args.PositionIds ?? torch.arange(past, past + s, device: hidden.device).unsqueeze(0).expand(b, s);
        var mask = AttentionOps.CausalMask(args.AttentionMask, b, s, past, hidden.dtype, hidden.device, Typed.SlidingWindow);
        var (cos, sin) = _rotary.CosSin(positions, hidden.dtype);
        var states = args.OutputHiddenStates ? new List<Tensor>() : null;
        foreach (var layer in model.layers)
        {
            states?.Add(hidden.alias());
            hidden = RunDecoderLayer(layer, hidden, [mask, cos, sin],
                (h, c) => layer.forward(h, new DecoderContext(c[0], c[1], c[2], args.Cache)), args.Cache is not null);
        }
        hidden = model.norm.forward(hidden);
        states?.Add(hidden.alias());
        var logits = lm_head.forward(hidden).to(ScalarType.Float32);
        var output = new ModelOutput
        {
            Logits = logits.MoveToOuterDisposeScope(),
            LastHiddenState = hidden.MoveToOuterDisposeScope(),
            HiddenStates = states?.Select(t => t.MoveToOuterDisposeScope()).ToList(),
        };
        return output;
    }
}
