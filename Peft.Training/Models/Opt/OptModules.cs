using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Models.Opt;

internal sealed record OptContext(Tensor Mask, KvCache? Cache);

#pragma warning disable IDE1006 // field names are the HF state-dict names
internal sealed class OptAttention : nn.Module<Tensor, OptContext, Tensor>
{
    private readonly LinearLayer k_proj, v_proj, q_proj, out_proj;
    private readonly int _layer, _heads, _headDim;
    private readonly DropoutSource _dropout;
    private readonly double _attnDrop;

    public OptAttention(OptConfig c, int layer, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(OptAttention))
    {
        _layer = layer;
        _dropout = dropout;
        _attnDrop = c.AttentionDropout;
        _heads = c.NumHeads;
        _headDim = c.HiddenSize / c.NumHeads;
        k_proj = new LinearLayer(c.HiddenSize, c.HiddenSize, c.EnableBias, device, dtype);
        v_proj = new LinearLayer(c.HiddenSize, c.HiddenSize, c.EnableBias, device, dtype);
        q_proj = new LinearLayer(c.HiddenSize, c.HiddenSize, c.EnableBias, device, dtype);
        out_proj = new LinearLayer(c.HiddenSize, c.HiddenSize, c.EnableBias, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, OptContext ctx)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], s = x.shape[1];
        Tensor Heads(Tensor t) => t.view(b, s, _heads, _headDim).transpose(1, 2);
        var q = Heads(q_proj.forward(x));
        var k = Heads(k_proj.forward(x));
        var v = Heads(v_proj.forward(x));
        if (ctx.Cache is not null) (k, v) = ctx.Cache.Append(_layer, k, v);
        // transformers' OPT clamps the masked scores at the dtype's minimum: max(scores + mask, min).
        var attn = AttentionOps.Attend(q, k, v, ctx.Mask, 1.0 / Math.Sqrt(_headDim), clampToMin: true,
            dropout: p => _dropout.Apply(p, _attnDrop, training));
        return out_proj.forward(attn.transpose(1, 2).reshape(b, s, _heads * _headDim)).MoveToOuterDisposeScope();
    }
}

internal sealed class OptDecoderLayer : nn.Module<Tensor, OptContext, Tensor>
{
    private readonly OptAttention self_attn;
    private readonly LayerNormLayer self_attn_layer_norm, final_layer_norm;
    private readonly LinearLayer fc1, fc2;
    private readonly bool _preNorm;
    private readonly Func<Tensor, Tensor> _act;
    private readonly DropoutSource _dropout;
    private readonly double _drop;

    public OptDecoderLayer(OptConfig c, int layer, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(OptDecoderLayer))
    {
        _dropout = dropout;
        _drop = c.Dropout;
        self_attn = new OptAttention(c, layer, dropout, device, dtype);
        self_attn_layer_norm = new LayerNormLayer(c.HiddenSize, 1e-5, device, dtype);
        fc1 = new LinearLayer(c.HiddenSize, c.FfnDim, c.EnableBias, device, dtype);
        fc2 = new LinearLayer(c.FfnDim, c.HiddenSize, c.EnableBias, device, dtype);
        final_layer_norm = new LayerNormLayer(c.HiddenSize, 1e-5, device, dtype);
        _preNorm = c.DoLayerNormBefore;
        _act = Activations.Get(c.Activation);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, OptContext ctx)
    {
        using var scope = torch.NewDisposeScope();
        // OPT-350m is post-LN (do_layer_norm_before=false); every other size is pre-LN.
        var h = x + _dropout.Apply(self_attn.forward(_preNorm ? self_attn_layer_norm.forward(x) : x, ctx), _drop, training);
        if (!_preNorm) h = self_attn_layer_norm.forward(h);
        var y = h + _dropout.Apply(fc2.forward(_act(fc1.forward(_preNorm ? final_layer_norm.forward(h) : h))), _drop, training);
        if (!_preNorm) y = final_layer_norm.forward(y);
        return y.MoveToOuterDisposeScope();
    }
}

/// <summary><c>model.decoder.*</c> of OPTForCausalLM.</summary>
internal sealed class OptDecoder : nn.Module
{
    public readonly EmbeddingLayer embed_tokens, embed_positions;
    public readonly LinearLayer? project_in, project_out;
    public readonly LayerNormLayer? final_layer_norm;
    public readonly ModuleList<OptDecoderLayer> layers;

    public OptDecoder(OptConfig c, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(OptDecoder))
    {
        embed_tokens = new EmbeddingLayer(c.VocabSize, c.WordEmbedProjDim, device, dtype);
        // OPT's learned positions are offset by 2 (rows 0 and 1 are never used by real tokens).
        embed_positions = new EmbeddingLayer(c.MaxPositions + 2, c.HiddenSize, device, dtype);
        if (c.WordEmbedProjDim != c.HiddenSize)
        {
            project_in = new LinearLayer(c.WordEmbedProjDim, c.HiddenSize, false, device, dtype);
            project_out = new LinearLayer(c.HiddenSize, c.WordEmbedProjDim, false, device, dtype);
        }
        if (c.DoLayerNormBefore && !c.RemoveFinalLayerNorm)
            final_layer_norm = new LayerNormLayer(c.HiddenSize, 1e-5, device, dtype);
        layers = new ModuleList<OptDecoderLayer>(Enumerable.Range(0, c.NumLayers).Select(i => new OptDecoderLayer(c, i, dropout, device, dtype)).ToArray());
        RegisterComponents();
    }
}

internal sealed class OptModel : nn.Module
{
    public readonly OptDecoder decoder;
    private readonly DropoutSource _dropout;
    private readonly double _layerDrop;

    public OptModel(OptConfig c, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(OptModel))
    {
        _dropout = dropout;
        _layerDrop = c.LayerDrop;
        decoder = new OptDecoder(c, dropout, device, dtype);
        RegisterComponents();
    }

    /// <summary>Decoder output (after project_out: word_embed_proj_dim wide); tensors land in the caller's scope.</summary>
    public BackboneOutput Encode(ForwardArgs args, LayerRunner? runLayer = null)
    {
        var d = decoder;
        var embeds = args.InputsEmbeds ?? d.embed_tokens.forward(args.InputIds ?? throw new ArgumentException("InputIds or InputsEmbeds is required"));
        long b = embeds.shape[0], s = embeds.shape[1];
        long past = args.Cache?.Length ?? 0;
        var mask = args.AttentionMask ?? torch.ones(b, past + s, ScalarType.Int64, embeds.device);
        // Positions come from the mask (padding-aware): cumsum(mask)·mask − 1, then the offset of 2.
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar one = 1, offset = 2;
        var positions = args.PositionIds
            ?? ((mask.cumsum(1, ScalarType.Int64) * mask - one).narrow(1, past, s));
        if (d.project_in is not null) embeds = d.project_in.forward(embeds);
        var hidden = embeds + d.embed_positions.forward(positions + offset);
        var additive = AttentionOps.CausalMask(mask, b, s, past, hidden.dtype, hidden.device);
        var states = args.OutputHiddenStates ? new List<Tensor>() : null;
        foreach (var layer in d.layers)
        {
            states?.Add(hidden.alias());
            if (SkipLayer()) continue;
            GradientCheckpoint.Block run = (x, c) => layer.forward(x, new OptContext(c[0], args.Cache));
            hidden = runLayer is null ? run(hidden, [additive]) : runLayer(layer, hidden, [additive], run, args.Cache is not null);
        }
        if (d.final_layer_norm is not null) hidden = d.final_layer_norm.forward(hidden);
        if (d.project_out is not null) hidden = d.project_out.forward(hidden);
        states?.Add(hidden.alias());
        return new BackboneOutput(hidden, states);
    }

    /// <summary>LayerDrop (training only): a layer is skipped with probability <c>layerdrop</c>.</summary>
    private bool SkipLayer()
    {
        if (!training || _layerDrop <= 0) return false;
        using var u = torch.rand(1, device: _dropout.Generator?.device, generator: _dropout.Generator);
        return u.item<float>() < _layerDrop;
    }
}
#pragma warning restore IDE1006
