using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Gpt2;

/// <summary>transformers' <c>GPT2LMHeadModel</c>: <c>transformer.*</c> plus <c>lm_head</c> tied to <c>transformer.wte</c>.</summary>
public sealed class Gpt2LMHeadModel : PretrainedModel
{
#pragma warning disable IDE1006
    private readonly Gpt2Backbone transformer;
    private readonly LinearLayer lm_head;
#pragma warning restore IDE1006

    public Gpt2Config Typed { get; }

    public Gpt2LMHeadModel(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(Gpt2LMHeadModel), config, TaskType.CausalLM, device, dtype)
    {
        Typed = Gpt2Config.From(config);
        transformer = new Gpt2Backbone(Typed, device, dtype);
        lm_head = new LinearLayer(transformer.wte.weight);
        RegisterComponents();
    }

    public override int NumLayers => Typed.NumLayers;
    public override int HiddenSize => Typed.HiddenSize;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int VocabSize => Typed.VocabSize;
    public override EmbeddingLayer InputEmbeddings => transformer.wte;
    public override IReadOnlyCollection<string> TiedParameterNames => ["lm_head.weight"];

    public override void InitWeights(long seed)
    {
        base.InitWeights(seed);
        // GPT-2 scales the residual projections by 1/sqrt(2·n_layer) (transformers' _init_weights).
        using var noGrad = torch.no_grad();
        double std = (Config.TryGetDouble("initializer_range") ?? 0.02) / Math.Sqrt(2.0 * Typed.NumLayers);
        var gen = new Generator((ulong)seed + 1, Device);
        foreach (var (name, p) in named_parameters())
            if (name.EndsWith("c_proj.weight", StringComparison.Ordinal)) p.normal_(0, std, gen);
    }

    public override ModelOutput Forward(ForwardArgs args)
    {
        using var scope = torch.NewDisposeScope();
        var embeds = args.InputsEmbeds ?? transformer.wte.forward(args.InputIds ?? throw new ArgumentException("InputIds or InputsEmbeds is required"));
        long b = embeds.shape[0], s = embeds.shape[1];
        long past = args.Cache?.Length ?? 0;
        var positions = args.PositionIds ?? torch.arange(past, past + s, device: embeds.device).unsqueeze(0).expand(b, s);
        var hidden = embeds + transformer.wpe.forward(positions);
        if (args.TokenTypeIds is not null) hidden = hidden + transformer.wte.forward(args.TokenTypeIds);
        var mask = AttentionOps.CausalMask(args.AttentionMask, b, s, past, hidden.dtype, hidden.device);
        var states = args.OutputHiddenStates ? new List<Tensor>() : null;
        foreach (var block in transformer.h)
        {
            states?.Add(hidden.alias());
            hidden = RunDecoderLayer(block, hidden, [mask], (h, c) => block.forward(h, new Gpt2Context(c[0], args.Cache)), args.Cache is not null);
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
