using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Models.Gpt2;

/// <summary>
/// Per-forward state: <paramref name="Future"/> (bool, true = key after the query) is applied with torch.where and the
/// padding (additive, null without a mask) added after it, as transformers' GPT-2 does; with left padding this
/// decides which keys a pad query spreads over (see <see cref="AttentionOps.Attend"/>).
/// </summary>
internal sealed record Gpt2Context(Tensor Future, Tensor? Padding, KvCache? Cache);

#pragma warning disable IDE1006 // field names are the HF state-dict names
internal sealed class Gpt2Attention : nn.Module<Tensor, Gpt2Context, Tensor>
{
    private readonly LinearLayer c_attn, c_proj;
    private readonly int _layer, _heads, _headDim;
    private readonly double _scale, _attnDrop, _residDrop;
    private readonly DropoutSource _dropout;

    public Gpt2Attention(Gpt2Config c, int layer, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(Gpt2Attention))
    {
        _layer = layer;
        _dropout = dropout;
        _attnDrop = c.AttnPdrop;
        _residDrop = c.ResidPdrop;
        _heads = c.NumHeads;
        _headDim = c.HiddenSize / c.NumHeads;
        _scale = (c.ScaleAttnWeights ? 1.0 / Math.Sqrt(_headDim) : 1.0) / (c.ScaleAttnByInverseLayerIdx ? layer + 1 : 1);
        c_attn = new LinearLayer(c.HiddenSize, 3 * c.HiddenSize, true, device, dtype, fanInFanOut: true);
        c_proj = new LinearLayer(c.HiddenSize, c.HiddenSize, true, device, dtype, fanInFanOut: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Gpt2Context ctx)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], s = x.shape[1], d = x.shape[2];
        var qkv = c_attn.forward(x).split(d, 2);
        Tensor Heads(Tensor t) => t.view(b, s, _heads, _headDim).transpose(1, 2);
        var q = Heads(qkv[0]);
        var k = Heads(qkv[1]);
        var v = Heads(qkv[2]);
        if (ctx.Cache is not null) (k, v) = ctx.Cache.Append(_layer, k, v);
        var attn = AttentionOps.Attend(q, k, v, ctx.Padding, _scale, masked: ctx.Future,
            dropout: p => _dropout.Apply(p, _attnDrop, training));
        var output = c_proj.forward(attn.transpose(1, 2).reshape(b, s, d));
        return _dropout.Apply(output, _residDrop, training).MoveToOuterDisposeScope();
    }
}

internal sealed class Gpt2Mlp : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer c_fc, c_proj;
    private readonly Func<Tensor, Tensor> _act;
    private readonly DropoutSource _dropout;
    private readonly double _residDrop;

    public Gpt2Mlp(Gpt2Config c, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(Gpt2Mlp))
    {
        _dropout = dropout;
        _residDrop = c.ResidPdrop;
        c_fc = new LinearLayer(c.HiddenSize, c.InnerSize, true, device, dtype, fanInFanOut: true);
        c_proj = new LinearLayer(c.InnerSize, c.HiddenSize, true, device, dtype, fanInFanOut: true);
        _act = Activations.Get(c.Activation);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return _dropout.Apply(c_proj.forward(_act(c_fc.forward(x))), _residDrop, training).MoveToOuterDisposeScope();
    }
}

internal sealed class Gpt2Block : nn.Module<Tensor, Gpt2Context, Tensor>
{
    private readonly LayerNormLayer ln_1, ln_2;
    private readonly Gpt2Attention attn;
    private readonly Gpt2Mlp mlp;

    public Gpt2Block(Gpt2Config c, int layer, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(Gpt2Block))
    {
        ln_1 = new LayerNormLayer(c.HiddenSize, c.LayerNormEps, device, dtype);
        attn = new Gpt2Attention(c, layer, dropout, device, dtype);
        ln_2 = new LayerNormLayer(c.HiddenSize, c.LayerNormEps, device, dtype);
        mlp = new Gpt2Mlp(c, dropout, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Gpt2Context ctx)
    {
        using var scope = torch.NewDisposeScope();
        var h = x + attn.forward(ln_1.forward(x), ctx);
        return (h + mlp.forward(ln_2.forward(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>The <c>transformer.*</c> part of the GPT-2 models (transformers' <c>GPT2Model</c>).</summary>
internal sealed class Gpt2Backbone : nn.Module
{
    public readonly EmbeddingLayer wte, wpe;
    public readonly ModuleList<Gpt2Block> h;
    public readonly LayerNormLayer ln_f;
    private readonly DropoutSource _dropout;
    private readonly double _embdDrop;

    public Gpt2Backbone(Gpt2Config c, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(Gpt2Backbone))
    {
        _dropout = dropout;
        _embdDrop = c.EmbdPdrop;
        wte = new EmbeddingLayer(c.VocabSize, c.HiddenSize, device, dtype);
        wpe = new EmbeddingLayer(c.MaxPositions, c.HiddenSize, device, dtype);
        h = new ModuleList<Gpt2Block>(Enumerable.Range(0, c.NumLayers).Select(i => new Gpt2Block(c, i, dropout, device, dtype)).ToArray());
        ln_f = new LayerNormLayer(c.HiddenSize, c.LayerNormEps, device, dtype);
        RegisterComponents();
    }

    /// <summary>Final-norm hidden state; tensors land in the caller's dispose scope.</summary>
    public BackboneOutput Encode(ForwardArgs args, LayerRunner? runLayer = null)
    {
        var embeds = args.InputsEmbeds ?? wte.forward(args.InputIds ?? throw new ArgumentException("InputIds or InputsEmbeds is required"));
        long b = embeds.shape[0], s = embeds.shape[1];
        long past = args.Cache?.Length ?? 0;
        var positions = args.PositionIds ?? TensorRanges.Of(past, past + s, embeds.device).unsqueeze(0).expand(b, s);
        var hidden = embeds + wpe.forward(positions);
        if (args.TokenTypeIds is not null) hidden = hidden + wte.forward(args.TokenTypeIds);
        hidden = _dropout.Apply(hidden, _embdDrop, training);
        var future = AttentionOps.CausalKeep(null, 1, s, past, hidden.device).logical_not();
        Tensor[] masks = args.AttentionMask is null ? [future] : [future, AttentionOps.PaddingMask(args.AttentionMask, hidden.dtype)];
        var states = args.OutputHiddenStates ? new List<Tensor>() : null;
        foreach (var block in h)
        {
            states?.Add(hidden.alias());
            GradientCheckpoint.Block run = (x, c) => block.forward(x, new Gpt2Context(c[0], c.Count > 1 ? c[1] : null, args.Cache));
            hidden = runLayer is null ? run(hidden, masks) : runLayer(block, hidden, masks, run, args.Cache is not null);
        }
        hidden = ln_f.forward(hidden);
        states?.Add(hidden.alias());
        return new BackboneOutput(hidden, states);
    }

    /// <summary>Checkpoint key of a bare GPT2Model for a <c>transformer.*</c> parameter (null for heads).</summary>
    public static string? BareKey(string name) =>
        name.StartsWith("transformer.", StringComparison.Ordinal) ? name["transformer.".Length..] : null;

    /// <summary>
    /// transformers' GPT-2 <c>_init_weights</c> also scales the residual projections (<c>c_proj</c>) by 1/sqrt(2·n_layer).
    /// </summary>
    public static void ScaleResidualInit(PretrainedModel model, Gpt2Config c, long seed)
    {
        using var noGrad = torch.no_grad();
        double std = (model.Config.TryGetDouble("initializer_range") ?? 0.02) / Math.Sqrt(2.0 * c.NumLayers);
        using var gen = new Generator((ulong)seed + 1, model.Device);
        foreach (var (name, p) in model.named_parameters())
            if (name.EndsWith("c_proj.weight", StringComparison.Ordinal)) p.normal_(0, std, gen);
    }
}
#pragma warning restore IDE1006
