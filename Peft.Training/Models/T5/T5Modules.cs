using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Models.T5;

/// <summary>
/// Per-forward state shared by the blocks of one stack. <see cref="SelfBias"/> is the relative position bias plus the
/// additive mask, computed once per forward from block 0's table (transformers computes it in the first layer and
/// passes it on). Decoder only: encoder output, its padding mask and the caches.
/// </summary>
internal sealed record T5StackContext(Tensor SelfBias, KvCache? Cache, Tensor? Encoder, Tensor? CrossBias, KvCache? CrossCache);

#pragma warning disable IDE1006 // field names are the HF state-dict names
/// <summary>T5 attention: no 1/√d scaling, additive relative position bias, q/k/v/o without biases.</summary>
internal sealed class T5Attention : nn.Module
{
    private readonly LinearLayer q, k, v, o;
    private readonly EmbeddingLayer? relative_attention_bias;
    private readonly int _heads, _dKv, _numBuckets, _maxDistance;
    private readonly bool _bidirectional;
    private readonly DropoutSource _dropout;
    private readonly double _rate;

    public T5Attention(T5Config c, bool hasRelativeBias, bool isDecoder, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(T5Attention))
    {
        _dropout = dropout;
        _rate = c.DropoutRate;
        _heads = c.NumHeads;
        _dKv = c.DKv;
        _numBuckets = c.NumBuckets;
        _maxDistance = c.MaxDistance;
        _bidirectional = !isDecoder;
        q = new LinearLayer(c.DModel, c.InnerDim, false, device, dtype);
        k = new LinearLayer(c.DModel, c.InnerDim, false, device, dtype);
        v = new LinearLayer(c.DModel, c.InnerDim, false, device, dtype);
        o = new LinearLayer(c.InnerDim, c.DModel, false, device, dtype);
        if (hasRelativeBias) relative_attention_bias = new EmbeddingLayer(c.NumBuckets, c.NumHeads, device, dtype);
        RegisterComponents();
    }

    private Tensor Heads(Tensor t) => t.view(t.shape[0], t.shape[1], _heads, _dKv).transpose(1, 2);

    /// <summary>
    /// Self-attention (<paramref name="keyValueSource"/> null; keys/values appended to <paramref name="cache"/>) or
    /// cross-attention over the encoder output (keys/values reused from <paramref name="cache"/> when it holds them for
    /// an encoder of this length, as transformers does, else computed and stored).
    /// </summary>
    public Tensor Forward(Tensor x, Tensor? keyValueSource, Tensor? bias, KvCache? cache, int layer)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], s = x.shape[1];
        var query = Heads(q.forward(x));
        Tensor key, value;
        if (keyValueSource is null)
        {
            (key, value) = (Heads(k.forward(x)), Heads(v.forward(x)));
            if (cache is not null) (key, value) = cache.Append(layer, key, value);
        }
        else if (cache?.Get(layer) is { } kv && kv.Key.shape[0] == b && kv.Key.shape[2] == keyValueSource.shape[1])
        {
            (key, value) = kv;
        }
        else
        {
            (key, value) = (Heads(k.forward(keyValueSource)), Heads(v.forward(keyValueSource)));
            cache?.Set(layer, key, value);
        }
        var attn = AttentionOps.Attend(query, key, value, null, 1.0, bias, dropout: p => _dropout.Apply(p, _rate, training));
        return o.forward(attn.transpose(1, 2).reshape(b, s, _heads * _dKv)).MoveToOuterDisposeScope();
    }

    /// <summary>Relative position bias [1, heads, q, k] for queries at offset..offset+q-1 and keys at 0..k-1.</summary>
    public Tensor PositionBias(long queryLen, long keyLen, long queryOffset, Device device)
    {
        var table = relative_attention_bias ?? throw new InvalidOperationException("this attention layer has no relative_attention_bias");
        using var scope = torch.NewDisposeScope();
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        var context = TensorRanges.Of(queryOffset, queryOffset + queryLen, device).unsqueeze(1);
        var memory = TensorRanges.Of(0, keyLen, device).unsqueeze(0);
        var buckets = RelativePositionBucket(memory - context, _bidirectional, _numBuckets, _maxDistance);
        return table.forward(buckets).permute(2, 0, 1).unsqueeze(0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Bucket of each relative position (key − query): half the buckets per direction when bidirectional (else only
    /// the past counts), exact buckets for small distances, then log-spaced up to max_distance. Float32 arithmetic in
    /// transformers' order so that bucket edges land on the same distances.
    /// </summary>
    internal static Tensor RelativePositionBucket(Tensor relative, bool bidirectional, int numBuckets, int maxDistance)
    {
        using var scope = torch.NewDisposeScope();
        using Scalar zero = 0;
        Tensor buckets, distance;
        if (bidirectional)
        {
            numBuckets /= 2;
            using Scalar directionOffset = numBuckets;
            buckets = relative.gt(zero).to(ScalarType.Int64) * directionOffset;
            distance = relative.abs();
        }
        else
        {
            buckets = torch.zeros_like(relative);
            distance = (-relative).clamp_min(zero);
        }
        int maxExact = numBuckets / 2;
        using Scalar one = 1, exact = maxExact, logRange = Math.Log((double)maxDistance / maxExact),
            logBuckets = numBuckets - maxExact, lastBucket = numBuckets - 1;
        var isSmall = distance.lt(exact);
        // clamp_min(1) only avoids log(0) where the small branch is taken anyway.
        var scaled = (distance.clamp_min(one).to(ScalarType.Float32) / exact).log()
            / logRange * logBuckets;
        var large = (scaled.to(ScalarType.Int64) + exact).clamp_max(lastBucket);
        return (buckets + torch.where(isSmall, distance, large)).MoveToOuterDisposeScope();
    }
}

/// <summary>Feed-forward <c>wo(act(wi(x)))</c> (T5's "relu").</summary>
internal sealed class T5DenseActDense : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer wi, wo;
    private readonly Func<Tensor, Tensor> _act;
    private readonly DropoutSource _dropout;
    private readonly double _rate;

    public T5DenseActDense(T5Config c, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(T5DenseActDense))
    {
        _dropout = dropout;
        _rate = c.DropoutRate;
        wi = new LinearLayer(c.DModel, c.DFf, false, device, dtype);
        wo = new LinearLayer(c.DFf, c.DModel, false, device, dtype);
        _act = Activations.Get(c.DenseActFn);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return wo.forward(_dropout.Apply(_act(wi.forward(x)), _rate, training)).MoveToOuterDisposeScope();
    }
}

/// <summary>Gated feed-forward <c>wo(act(wi_0(x)) · wi_1(x))</c> (mT5 / T5 v1.1 "gated-gelu").</summary>
internal sealed class T5DenseGatedActDense : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer wi_0, wi_1, wo;
    private readonly Func<Tensor, Tensor> _act;
    private readonly DropoutSource _dropout;
    private readonly double _rate;

    public T5DenseGatedActDense(T5Config c, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(T5DenseGatedActDense))
    {
        _dropout = dropout;
        _rate = c.DropoutRate;
        wi_0 = new LinearLayer(c.DModel, c.DFf, false, device, dtype);
        wi_1 = new LinearLayer(c.DModel, c.DFf, false, device, dtype);
        wo = new LinearLayer(c.DFf, c.DModel, false, device, dtype);
        _act = Activations.Get(c.DenseActFn);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return wo.forward(_dropout.Apply(_act(wi_0.forward(x)) * wi_1.forward(x), _rate, training)).MoveToOuterDisposeScope();
    }
}

/// <summary><c>layer.0</c>: pre-norm self-attention with a residual.</summary>
internal sealed class T5LayerSelfAttention : nn.Module
{
    private readonly T5Attention SelfAttention;
    private readonly RmsNorm layer_norm;
    private readonly DropoutSource _dropout;
    private readonly double _rate;

    public T5LayerSelfAttention(T5Config c, bool hasRelativeBias, bool isDecoder, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(T5LayerSelfAttention))
    {
        _dropout = dropout;
        _rate = c.DropoutRate;
        SelfAttention = new T5Attention(c, hasRelativeBias, isDecoder, dropout, device, dtype);
        layer_norm = new RmsNorm(c.DModel, c.LayerNormEps, device, dtype);
        RegisterComponents();
    }

    public T5Attention Attention => SelfAttention;

    public Tensor Forward(Tensor x, T5StackContext ctx, int layer)
    {
        using var scope = torch.NewDisposeScope();
        var attn = SelfAttention.Forward(layer_norm.forward(x), null, ctx.SelfBias, ctx.Cache, layer);
        return (x + _dropout.Apply(attn, _rate, training)).MoveToOuterDisposeScope();
    }
}

/// <summary>Decoder <c>layer.1</c>: pre-norm attention over the encoder output with a residual.</summary>
internal sealed class T5LayerCrossAttention : nn.Module
{
    private readonly T5Attention EncDecAttention;
    private readonly RmsNorm layer_norm;
    private readonly DropoutSource _dropout;
    private readonly double _rate;

    public T5LayerCrossAttention(T5Config c, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(T5LayerCrossAttention))
    {
        _dropout = dropout;
        _rate = c.DropoutRate;
        EncDecAttention = new T5Attention(c, false, true, dropout, device, dtype);
        layer_norm = new RmsNorm(c.DModel, c.LayerNormEps, device, dtype);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, T5StackContext ctx, int layer)
    {
        using var scope = torch.NewDisposeScope();
        var attn = EncDecAttention.Forward(layer_norm.forward(x), ctx.Encoder!, ctx.CrossBias, ctx.CrossCache, layer);
        return (x + _dropout.Apply(attn, _rate, training)).MoveToOuterDisposeScope();
    }
}

/// <summary>Last sub-layer of a block: pre-norm feed-forward with a residual.</summary>
internal sealed class T5LayerFF : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> DenseReluDense;
    private readonly RmsNorm layer_norm;
    private readonly DropoutSource _dropout;
    private readonly double _rate;

    public T5LayerFF(T5Config c, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(T5LayerFF))
    {
        _dropout = dropout;
        _rate = c.DropoutRate;
        DenseReluDense = c.IsGatedAct ? new T5DenseGatedActDense(c, dropout, device, dtype) : new T5DenseActDense(c, dropout, device, dtype);
        layer_norm = new RmsNorm(c.DModel, c.LayerNormEps, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return (x + _dropout.Apply(DenseReluDense.forward(layer_norm.forward(x)), _rate, training)).MoveToOuterDisposeScope();
    }
}

/// <summary>One block: <c>layer</c> = [self-attention, (cross-attention,) feed-forward].</summary>
internal sealed class T5Block : nn.Module
{
    private readonly ModuleList<nn.Module> layer;
    private readonly bool _isDecoder;

    public T5Block(T5Config c, bool hasRelativeBias, bool isDecoder, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(T5Block))
    {
        _isDecoder = isDecoder;
        var self = new T5LayerSelfAttention(c, hasRelativeBias, isDecoder, dropout, device, dtype);
        var ff = new T5LayerFF(c, dropout, device, dtype);
        layer = isDecoder
            ? new ModuleList<nn.Module>(self, new T5LayerCrossAttention(c, dropout, device, dtype), ff)
            : new ModuleList<nn.Module>(self, ff);
        RegisterComponents();
    }

    public T5Attention SelfAttention => ((T5LayerSelfAttention)layer[0]).Attention;

    public Tensor Forward(Tensor x, T5StackContext ctx, int index)
    {
        using var scope = torch.NewDisposeScope();
        var h = ClampFp16(((T5LayerSelfAttention)layer[0]).Forward(x, ctx, index));
        if (_isDecoder) h = ClampFp16(((T5LayerCrossAttention)layer[1]).Forward(h, ctx, index));
        h = ClampFp16(((T5LayerFF)layer[^1]).forward(h));
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>transformers clamps float16 activations after each sub-layer so that T5's large values do not overflow.</summary>
    private static Tensor ClampFp16(Tensor h)
    {
        if (h.dtype != ScalarType.Float16) return h;
        using var anyInf = h.isinf().any();
        double limit = anyInf.item<bool>() ? 65504.0 - 1000 : 65504.0;
        using Scalar lowest = -limit, highest = limit;
        return h.clamp(lowest, highest);
    }
}

/// <summary>The <c>encoder.*</c> / <c>decoder.*</c> stack; the word embeddings belong to the outer model (<c>shared</c>).</summary>
internal sealed class T5Stack : nn.Module
{
    private readonly ModuleList<T5Block> block;
    private readonly RmsNorm final_layer_norm;
    private readonly DropoutSource _dropout;
    private readonly double _rate;

    public T5Stack(T5Config c, bool isDecoder, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(T5Stack))
    {
        _dropout = dropout;
        _rate = c.DropoutRate;
        int n = isDecoder ? c.NumDecoderLayers : c.NumLayers;
        // Only block 0 owns a relative position table; the bias it yields is shared by every block.
        block = new ModuleList<T5Block>(Enumerable.Range(0, n).Select(i => new T5Block(c, i == 0, isDecoder, dropout, device, dtype)).ToArray());
        final_layer_norm = new RmsNorm(c.DModel, c.LayerNormEps, device, dtype);
        RegisterComponents();
    }

    public int Count => block.Count;

    /// <summary>Encoder: bidirectional attention over the (padding-masked) input embeddings.</summary>
    public (Tensor Hidden, List<Tensor>? States) Encode(Tensor embeds, Tensor? mask, bool outputStates)
    {
        using var scope = torch.NewDisposeScope();
        long len = embeds.shape[1];
        var bias = block[0].SelfAttention.PositionBias(len, len, 0, embeds.device);
        if (mask is not null) bias = bias + AttentionOps.PaddingMask(mask, embeds.dtype);
        return Run(embeds, new T5StackContext(bias, null, null, null, null), outputStates);
    }

    /// <summary>
    /// Decoder: causal self-attention over past (from <paramref name="cache"/>, which may start with an injected prefix)
    /// plus current tokens, and cross-attention over the encoder output.
    /// </summary>
    public (Tensor Hidden, List<Tensor>? States) Decode(Tensor embeds, Tensor? mask, KvCache? cache, Tensor encoder, Tensor? encoderMask,
        bool outputStates)
    {
        using var scope = torch.NewDisposeScope();
        long b = embeds.shape[0], s = embeds.shape[1];
        if (cache is not null && cache.NumLayers < block.Count)
            throw new ArgumentException($"the key/value cache has {cache.NumLayers} layers but the decoder has {block.Count}");
        long past = cache?.Length ?? 0;
        if (mask is not null && mask.shape[1] == s && past > 0)
            mask = torch.cat([torch.ones(b, past, dtype: mask.dtype, device: mask.device), mask], 1);   // mask given for the new tokens only
        if (mask is not null && (mask.shape[0] != b || mask.shape[1] != past + s))
            throw new ArgumentException($"decoder attention mask has shape [{string.Join(", ", mask.shape)}]; expected [{b}, {past + s}] (past + current)");
        var selfBias = block[0].SelfAttention.PositionBias(s, past + s, past, embeds.device)
            + AttentionOps.CausalMask(mask, b, s, past, embeds.dtype, embeds.device);
        var crossBias = encoderMask is null ? null : AttentionOps.PaddingMask(encoderMask, embeds.dtype);
        var ctx = new T5StackContext(selfBias, cache, encoder, crossBias, cache?.GetOrCreateCrossAttention());
        return Run(embeds, ctx, outputStates);
    }

    /// <summary>Hidden states as transformers collects them: the input of every block, then the final-norm output.</summary>
    private (Tensor Hidden, List<Tensor>? States) Run(Tensor hidden, T5StackContext ctx, bool outputStates)
    {
        var states = outputStates ? new List<Tensor>() : null;
        hidden = _dropout.Apply(hidden, _rate, training);
        for (int i = 0; i < block.Count; i++)
        {
            states?.Add(hidden.alias());
            hidden = block[i].Forward(hidden, ctx, i);
        }
        hidden = _dropout.Apply(final_layer_norm.forward(hidden), _rate, training);
        states?.Add(hidden.alias());
        states?.ForEach(t => t.MoveToOuterDisposeScope());
        return (hidden.MoveToOuterDisposeScope(), states);
    }
}
#pragma warning restore IDE1006
