using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Models.Bert;

/// <summary>Per-forward state shared by every encoder layer: additive padding mask (null = attend everywhere), cache.</summary>
internal sealed record EncoderContext(Tensor? Mask, KvCache? Cache);

#pragma warning disable IDE1006 // field names are the HF state-dict names
internal sealed class BertEmbeddings : nn.Module
{
    public readonly EmbeddingLayer word_embeddings, position_embeddings, token_type_embeddings;
    public readonly LayerNormLayer LayerNorm;
    private readonly BertConfig _c;
    private readonly DropoutSource _dropout;

    public BertEmbeddings(BertConfig c, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(BertEmbeddings))
    {
        _c = c;
        _dropout = dropout;
        word_embeddings = new EmbeddingLayer(c.VocabSize, c.HiddenSize, device, dtype, c.PadTokenId);
        // RoBERTa's position table reserves rows 0..pad for padding, so its init zeroes the pad row too.
        position_embeddings = new EmbeddingLayer(c.MaxPositions, c.HiddenSize, device, dtype, c.IsRoberta ? c.PadTokenId : null);
        token_type_embeddings = new EmbeddingLayer(c.TypeVocabSize, c.HiddenSize, device, dtype);
        LayerNorm = new LayerNormLayer(c.HiddenSize, c.LayerNormEps, device, dtype);
        RegisterComponents();
    }

    public Tensor Embed(ForwardArgs args, long past)
    {
        using var scope = torch.NewDisposeScope();
        var embeds = args.InputsEmbeds ?? word_embeddings.forward(args.InputIds ?? throw new ArgumentException("InputIds or InputsEmbeds is required"));
        long b = embeds.shape[0], s = embeds.shape[1];
        var positions = args.PositionIds ?? DefaultPositions(args.InputsEmbeds is null ? args.InputIds : null, b, s, past, embeds.device);
        var types = args.TokenTypeIds ?? torch.zeros(b, s, ScalarType.Int64, embeds.device);
        var h = embeds + token_type_embeddings.forward(types) + position_embeddings.forward(positions);
        h = _dropout.Apply(LayerNorm.forward(h), _c.HiddenDropout, training);
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// BERT: past .. past+s−1. RoBERTa: from the ids, pads keep the pad index and real tokens count up from pad+1
    /// (so left padding does not shift them); from embeddings alone, pad+1 .. pad+s.
    /// </summary>
    private Tensor DefaultPositions(Tensor? ids, long b, long s, long past, Device device)
    {
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        if (!_c.IsRoberta) return TensorRanges.Of(past, past + s, device).unsqueeze(0).expand(b, s);
        long pad = _c.PadTokenId;
        using Scalar padId = pad, offset = past;
        if (ids is null) return TensorRanges.Of(pad + 1, pad + 1 + s, device).unsqueeze(0).expand(b, s);
        var real = ids.ne(padId).to(ScalarType.Int64);
        return (real.cumsum(1) + offset) * real + padId;
    }
}

internal sealed class BertSelfAttention : nn.Module<Tensor, EncoderContext, Tensor>
{
    private readonly LinearLayer query, key, value;
    private readonly int _layer, _heads, _headDim;
    private readonly double _attnDrop;
    private readonly DropoutSource _dropout;

    public BertSelfAttention(BertConfig c, int layer, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(BertSelfAttention))
    {
        _layer = layer;
        _heads = c.NumHeads;
        _headDim = c.HiddenSize / c.NumHeads;
        _dropout = dropout;
        _attnDrop = c.AttentionDropout;
        query = new LinearLayer(c.HiddenSize, c.HiddenSize, true, device, dtype);
        key = new LinearLayer(c.HiddenSize, c.HiddenSize, true, device, dtype);
        value = new LinearLayer(c.HiddenSize, c.HiddenSize, true, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, EncoderContext ctx)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], s = x.shape[1];
        Tensor Heads(Tensor t) => t.view(b, s, _heads, _headDim).transpose(1, 2);
        var q = Heads(query.forward(x));
        var k = Heads(key.forward(x));
        var v = Heads(value.forward(x));
        // Prefix tuning feeds virtual keys/values through the cache (transformers' past_key_value).
        if (ctx.Cache is not null) (k, v) = ctx.Cache.Append(_layer, k, v);
        var attn = AttentionOps.Attend(q, k, v, ctx.Mask, 1.0 / Math.Sqrt(_headDim), dropout: p => _dropout.Apply(p, _attnDrop, training));
        return attn.transpose(1, 2).reshape(b, s, _heads * _headDim).MoveToOuterDisposeScope();
    }
}

/// <summary>dense → dropout → LayerNorm(· + residual): both <c>attention.output</c> and the layer's <c>output</c>.</summary>
internal sealed class BertResidualOutput : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly LinearLayer dense;
    private readonly LayerNormLayer LayerNorm;
    private readonly double _rate;
    private readonly DropoutSource _dropout;

    public BertResidualOutput(BertConfig c, int inFeatures, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(BertResidualOutput))
    {
        dense = new LinearLayer(inFeatures, c.HiddenSize, true, device, dtype);
        LayerNorm = new LayerNormLayer(c.HiddenSize, c.LayerNormEps, device, dtype);
        _dropout = dropout;
        _rate = c.HiddenDropout;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor residual)
    {
        using var scope = torch.NewDisposeScope();
        var h = _dropout.Apply(dense.forward(x), _rate, training);
        return LayerNorm.forward(h + residual).MoveToOuterDisposeScope();
    }
}

internal sealed class BertAttention : nn.Module<Tensor, EncoderContext, Tensor>
{
    private readonly BertSelfAttention self;
    private readonly BertResidualOutput output;

    public BertAttention(BertConfig c, int layer, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(BertAttention))
    {
        self = new BertSelfAttention(c, layer, dropout, device, dtype);
        output = new BertResidualOutput(c, c.HiddenSize, dropout, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, EncoderContext ctx)
    {
        using var scope = torch.NewDisposeScope();
        return output.forward(self.forward(x, ctx), x).MoveToOuterDisposeScope();
    }
}

internal sealed class BertIntermediate : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer dense;
    private readonly Func<Tensor, Tensor> _act;

    public BertIntermediate(BertConfig c, Device device, ScalarType dtype) : base(nameof(BertIntermediate))
    {
        dense = new LinearLayer(c.HiddenSize, c.IntermediateSize, true, device, dtype);
        _act = Activations.Get(c.HiddenAct);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return _act(dense.forward(x)).MoveToOuterDisposeScope();
    }
}

internal sealed class BertLayer : nn.Module<Tensor, EncoderContext, Tensor>
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertResidualOutput output;

    public BertLayer(BertConfig c, int layer, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(BertLayer))
    {
        attention = new BertAttention(c, layer, dropout, device, dtype);
        intermediate = new BertIntermediate(c, device, dtype);
        output = new BertResidualOutput(c, c.IntermediateSize, dropout, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, EncoderContext ctx)
    {
        using var scope = torch.NewDisposeScope();
        var h = attention.forward(x, ctx);
        return output.forward(intermediate.forward(h), h).MoveToOuterDisposeScope();
    }
}

internal sealed class BertEncoder : nn.Module
{
    public readonly ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig c, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(BertEncoder))
    {
        layer = new ModuleList<BertLayer>(Enumerable.Range(0, c.NumLayers).Select(i => new BertLayer(c, i, dropout, device, dtype)).ToArray());
        RegisterComponents();
    }
}

/// <summary>tanh(dense(first token)): the pooled output BERT's sequence classifier reads.</summary>
internal sealed class BertPooler : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer dense;

    public BertPooler(BertConfig c, Device device, ScalarType dtype) : base(nameof(BertPooler))
    {
        dense = new LinearLayer(c.HiddenSize, c.HiddenSize, true, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor sequence)
    {
        using var scope = torch.NewDisposeScope();
        return dense.forward(sequence.select(1, 0)).tanh().MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The encoder (transformers' <c>BertModel</c>/<c>RobertaModel</c>): <c>bert.*</c> / <c>roberta.*</c> inside models
/// with a head; the bare model registers its children at the top level instead.
/// </summary>
internal sealed class BertMain : nn.Module
{
    public readonly BertEmbeddings embeddings;
    public readonly BertEncoder encoder;
    public readonly BertPooler? pooler;

    public BertMain(BertConfig c, bool withPooler, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(BertMain))
    {
        embeddings = new BertEmbeddings(c, dropout, device, dtype);
        encoder = new BertEncoder(c, dropout, device, dtype);
        if (withPooler) pooler = new BertPooler(c, device, dtype);
        RegisterComponents();
    }

    /// <summary>Embeddings then every layer; the states are the embedding output and each layer's output.</summary>
    public BackboneOutput Encode(ForwardArgs args)
    {
        long past = args.Cache?.Length ?? 0;
        var hidden = embeddings.Embed(args, past);
        var mask = args.AttentionMask is null ? null : AttentionOps.PaddingMask(args.AttentionMask, hidden.dtype);
        var ctx = new EncoderContext(mask, args.Cache);
        var states = args.OutputHiddenStates ? new List<Tensor>() : null;
        foreach (var l in encoder.layer)
        {
            states?.Add(hidden.alias());
            hidden = l.forward(hidden, ctx);
        }
        states?.Add(hidden.alias());
        return new BackboneOutput(hidden, states);
    }
}
#pragma warning restore IDE1006
