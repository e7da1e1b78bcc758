using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Models.Bloom;

/// <summary>Per-forward state: <paramref name="Masked"/> is bool (true = future or padding key), applied with masked_fill.</summary>
internal sealed record BloomContext(Tensor Masked, Tensor Alibi, KvCache? Cache);

#pragma warning disable IDE1006 // field names are the HF state-dict names
internal sealed class BloomAttention : nn.Module<Tensor, BloomContext, Tensor>
{
    private readonly LinearLayer query_key_value, dense;
    private readonly int _layer, _heads, _headDim;
    private readonly DropoutSource _dropout;
    private readonly double _attnDrop;

    public BloomAttention(BloomConfig c, int layer, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(BloomAttention))
    {
        _layer = layer;
        _dropout = dropout;
        _attnDrop = c.AttentionDropout;
        _heads = c.NumHeads;
        _headDim = c.HiddenSize / c.NumHeads;
        query_key_value = new LinearLayer(c.HiddenSize, 3 * c.HiddenSize, true, device, dtype);
        dense = new LinearLayer(c.HiddenSize, c.HiddenSize, true, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, BloomContext ctx)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], s = x.shape[1];
        // The fused projection is laid out [heads, 3, head_dim] per position (not [3, heads, head_dim]).
        var fused = query_key_value.forward(x).view(b, s, _heads, 3, _headDim);
        var q = fused.select(3, 0).transpose(1, 2);
        var k = fused.select(3, 1).transpose(1, 2);
        var v = fused.select(3, 2).transpose(1, 2);
        if (ctx.Cache is not null) (k, v) = ctx.Cache.Append(_layer, k, v);
        // transformers' BLOOM replaces masked scores (masked_fill), so they get no gradient.
        var attn = AttentionOps.Attend(q, k, v, null, 1.0 / Math.Sqrt(_headDim), ctx.Alibi, masked: ctx.Masked,
            dropout: p => _dropout.Apply(p, _attnDrop, training));
        return dense.forward(attn.transpose(1, 2).reshape(b, s, _heads * _headDim)).MoveToOuterDisposeScope();
    }
}

internal sealed class BloomMlp : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer dense_h_to_4h, dense_4h_to_h;

    public BloomMlp(BloomConfig c, Device device, ScalarType dtype) : base(nameof(BloomMlp))
    {
        dense_h_to_4h = new LinearLayer(c.HiddenSize, 4 * c.HiddenSize, true, device, dtype);
        dense_4h_to_h = new LinearLayer(4 * c.HiddenSize, c.HiddenSize, true, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return dense_4h_to_h.forward(Activations.GeluTanh(dense_h_to_4h.forward(x))).MoveToOuterDisposeScope();
    }
}

internal sealed class BloomBlock : nn.Module<Tensor, BloomContext, Tensor>
{
    private readonly LayerNormLayer input_layernorm, post_attention_layernorm;
    private readonly BloomAttention self_attention;
    private readonly BloomMlp mlp;
    private readonly bool _residualPostLn;
    private readonly DropoutSource _dropout;
    private readonly double _hiddenDrop;

    public BloomBlock(BloomConfig c, int layer, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(BloomBlock))
    {
        _dropout = dropout;
        _hiddenDrop = c.HiddenDropout;
        input_layernorm = new LayerNormLayer(c.HiddenSize, c.LayerNormEps, device, dtype);
        self_attention = new BloomAttention(c, layer, dropout, device, dtype);
        post_attention_layernorm = new LayerNormLayer(c.HiddenSize, c.LayerNormEps, device, dtype);
        mlp = new BloomMlp(c, device, dtype);
        _residualPostLn = c.ResidualPostLayerNorm;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, BloomContext ctx)
    {
        using var scope = torch.NewDisposeScope();
        var ln1 = input_layernorm.forward(x);
        // transformers' dropout_add: residual + dropout(branch), after the attention's dense and the MLP's dense_4h_to_h.
        var h = (_residualPostLn ? ln1 : x) + _dropout.Apply(self_attention.forward(ln1, ctx), _hiddenDrop, training);
        var ln2 = post_attention_layernorm.forward(h);
        return ((_residualPostLn ? ln2 : h) + _dropout.Apply(mlp.forward(ln2), _hiddenDrop, training)).MoveToOuterDisposeScope();
    }
}

/// <summary><c>transformer.*</c> of the BLOOM models (transformers' <c>BloomModel</c>).</summary>
internal sealed class BloomBackbone : nn.Module
{
    public readonly EmbeddingLayer word_embeddings;
    public readonly LayerNormLayer word_embeddings_layernorm, ln_f;
    public readonly ModuleList<BloomBlock> h;
    private readonly float[] _slopes;

    public BloomBackbone(BloomConfig c, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(BloomBackbone))
    {
        word_embeddings = new EmbeddingLayer(c.VocabSize, c.HiddenSize, device, dtype);
        word_embeddings_layernorm = new LayerNormLayer(c.HiddenSize, c.LayerNormEps, device, dtype);
        h = new ModuleList<BloomBlock>(Enumerable.Range(0, c.NumLayers).Select(i => new BloomBlock(c, i, dropout, device, dtype)).ToArray());
        ln_f = new LayerNormLayer(c.HiddenSize, c.LayerNormEps, device, dtype);
        _slopes = BloomConfig.AlibiSlopes(c.NumHeads);
        RegisterComponents();
    }

    /// <summary>Final-norm hidden state; tensors land in the caller's dispose scope.</summary>
    public BackboneOutput Encode(ForwardArgs args, LayerRunner? runLayer = null)
    {
        var embeds = args.InputsEmbeds ?? word_embeddings.forward(args.InputIds ?? throw new ArgumentException("InputIds or InputsEmbeds is required"));
        long b = embeds.shape[0], s = embeds.shape[1];
        long past = args.Cache?.Length ?? 0;
        var mask = args.AttentionMask ?? torch.ones(b, past + s, ScalarType.Int64, embeds.device);
        var hidden = word_embeddings_layernorm.forward(embeds);
        // ALiBi: slope_h · (key position), key positions counted over the mask so padding does not shift them.
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar one = 1;
        var keyPos = ((mask.cumsum(1, ScalarType.Int64) - one) * mask).to(ScalarType.Float32);
        var slopes = torch.tensor(_slopes, ScalarType.Float32, embeds.device).view(1, -1, 1, 1);
        var alibi = (slopes * keyPos.view(b, 1, 1, -1)).to(hidden.dtype);
        var masked = AttentionOps.CausalKeep(mask, b, s, past, hidden.device).logical_not();
        var states = args.OutputHiddenStates ? new List<Tensor>() : null;
        foreach (var block in h)
        {
            states?.Add(hidden.alias());
            GradientCheckpoint.Block run = (x, c) => block.forward(x, new BloomContext(c[0], c[1], args.Cache));
            hidden = runLayer is null ? run(hidden, [masked, alibi]) : runLayer(block, hidden, [masked, alibi], run, args.Cache is not null);
        }
        hidden = ln_f.forward(hidden);
        states?.Add(hidden.alias());
        return new BackboneOutput(hidden, states);
    }

    /// <summary>Hub BLOOM checkpoints are bare <c>BloomModel</c>s (<c>h.0...</c>, no <c>transformer.</c> prefix).</summary>
    public static string? BareKey(string name) =>
        name.StartsWith("transformer.", StringComparison.Ordinal) ? name["transformer.".Length..] : null;
}
#pragma warning restore IDE1006
