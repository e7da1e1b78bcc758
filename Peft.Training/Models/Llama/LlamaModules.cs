using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Models.Llama;

/// <summary>Per-forward state shared by every decoder layer.</summary>
internal sealed record DecoderContext(Tensor Mask, Tensor Cos, Tensor Sin, KvCache? Cache);

#pragma warning disable IDE1006 // field names are the HF state-dict names
internal sealed class LlamaAttention : nn.Module<Tensor, DecoderContext, Tensor>
{
    private readonly LinearLayer q_proj, k_proj, v_proj, o_proj;
    private readonly int _layer, _heads, _kvHeads, _headDim;
    private readonly DropoutSource _dropout;
    private readonly double _attnDrop;

    public LlamaAttention(LlamaConfig c, int layer, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(LlamaAttention))
    {
        _layer = layer;
        _dropout = dropout;
        _attnDrop = c.AttentionDropout;
        _heads = c.NumHeads;
        _kvHeads = c.NumKvHeads;
        _headDim = c.HeadDim;
        q_proj = new LinearLayer(c.HiddenSize, c.NumHeads * c.HeadDim, c.QkvBias, device, dtype);
        k_proj = new LinearLayer(c.HiddenSize, c.NumKvHeads * c.HeadDim, c.QkvBias, device, dtype);
        v_proj = new LinearLayer(c.HiddenSize, c.NumKvHeads * c.HeadDim, c.QkvBias, device, dtype);
        o_proj = new LinearLayer(c.NumHeads * c.HeadDim, c.HiddenSize, c.OutputBias, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, DecoderContext ctx)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], s = x.shape[1];
        var q = q_proj.forward(x).view(b, s, _heads, _headDim).transpose(1, 2);
        var k = k_proj.forward(x).view(b, s, _kvHeads, _headDim).transpose(1, 2);
        var v = v_proj.forward(x).view(b, s, _kvHeads, _headDim).transpose(1, 2);
        q = RotaryEmbedding.Apply(q, ctx.Cos, ctx.Sin);
        k = RotaryEmbedding.Apply(k, ctx.Cos, ctx.Sin);
        if (ctx.Cache is not null) (k, v) = ctx.Cache.Append(_layer, k, v);
        long groups = _heads / _kvHeads;
        var attn = AttentionOps.AttendGrouped(q, k, v, ctx.Mask, 1.0 / Math.Sqrt(_headDim), groups,
            dropout: p => _dropout.Apply(p, _attnDrop, training));
        var merged = attn.transpose(1, 2).reshape(b, s, _heads * _headDim);
        return o_proj.forward(merged).MoveToOuterDisposeScope();
    }
}

internal sealed class LlamaMlp : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer gate_proj, up_proj, down_proj;
    private readonly Func<Tensor, Tensor> _act;

    public LlamaMlp(LlamaConfig c, Device device, ScalarType dtype) : base(nameof(LlamaMlp))
    {
        gate_proj = new LinearLayer(c.HiddenSize, c.IntermediateSize, c.MlpBias, device, dtype);
        up_proj = new LinearLayer(c.HiddenSize, c.IntermediateSize, c.MlpBias, device, dtype);
        down_proj = new LinearLayer(c.IntermediateSize, c.HiddenSize, c.MlpBias, device, dtype);
        _act = Activations.Get(c.HiddenAct);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return down_proj.forward(_act(gate_proj.forward(x)) * up_proj.forward(x)).MoveToOuterDisposeScope();
    }
}

internal sealed class LlamaDecoderLayer : nn.Module<Tensor, DecoderContext, Tensor>
{
    private readonly LlamaAttention self_attn;
    private readonly LlamaMlp mlp;
    private readonly RmsNorm input_layernorm, post_attention_layernorm;

    public LlamaDecoderLayer(LlamaConfig c, int layer, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(LlamaDecoderLayer))
    {
        self_attn = new LlamaAttention(c, layer, dropout, device, dtype);
        mlp = new LlamaMlp(c, device, dtype);
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, DecoderContext ctx)
    {
        using var scope = torch.NewDisposeScope();
        var h = x + self_attn.forward(input_layernorm.forward(x), ctx);
        var y = h + mlp.forward(post_attention_layernorm.forward(h));
        return y.MoveToOuterDisposeScope();
    }
}

/// <summary>The decoder stack (<c>model.*</c> in HF checkpoints), shared by the LM and classification heads.</summary>
internal sealed class LlamaBackbone : nn.Module
{
    public readonly EmbeddingLayer embed_tokens;
    public readonly ModuleList<LlamaDecoderLayer> layers;
    public readonly RmsNorm norm;
    private readonly RotaryEmbedding _rotary;
    private readonly int? _slidingWindow;

    public LlamaBackbone(LlamaConfig c, DropoutSource dropout, Device device, ScalarType dtype) : base(nameof(LlamaBackbone))
    {
        embed_tokens = new EmbeddingLayer(c.VocabSize, c.HiddenSize, device, dtype);
        layers = new ModuleList<LlamaDecoderLayer>(Enumerable.Range(0, c.NumLayers).Select(i => new LlamaDecoderLayer(c, i, dropout, device, dtype)).ToArray());
        norm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        _rotary = new RotaryEmbedding(c.HeadDim, c.RopeTheta, c.RopeScaling);
        _slidingWindow = c.SlidingWindow;
        RegisterComponents();
    }

    /// <summary>Final-norm hidden state; tensors land in the caller's dispose scope.</summary>
    public BackboneOutput Encode(ForwardArgs args, LayerRunner? runLayer = null)
    {
        var hidden = args.InputsEmbeds ?? embed_tokens.forward(args.InputIds ?? throw new ArgumentException("InputIds or InputsEmbeds is required"));
        long b = hidden.shape[0], s = hidden.shape[1];
        long past = args.Cache?.Length ?? 0;
        var positions = args.PositionIds ?? TensorRanges.Of(past, past + s, hidden.device).unsqueeze(0).expand(b, s);
        var mask = AttentionOps.CausalMask(args.AttentionMask, b, s, past, hidden.dtype, hidden.device, _slidingWindow);
        var (cos, sin) = _rotary.CosSin(positions, hidden.dtype);
        var states = args.OutputHiddenStates ? new List<Tensor>() : null;
        foreach (var layer in layers)
        {
            states?.Add(hidden.alias());
            GradientCheckpoint.Block run = (h, c) => layer.forward(h, new DecoderContext(c[0], c[1], c[2], args.Cache));
            hidden = runLayer is null ? run(hidden, [mask, cos, sin]) : runLayer(layer, hidden, [mask, cos, sin], run, args.Cache is not null);
        }
        hidden = norm.forward(hidden);
        states?.Add(hidden.alias());
        return new BackboneOutput(hidden, states);
    }
}
#pragma warning restore IDE1006
