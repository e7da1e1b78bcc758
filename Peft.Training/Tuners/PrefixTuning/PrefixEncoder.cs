using Peft.Training.Nn;
using Peft.Training.Tuners.PromptLearning;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.PrefixTuning;

/// <summary>
/// PEFT's <c>PrefixEncoder</c>. Output [num_virtual_tokens, num_layers·2·token_dim]: either the table itself, or
/// (prefix_projection while training) <c>transform</c> = Linear(token_dim, h) → Tanh → Linear(h, num_layers·2·token_dim)
/// applied to an [nvt, token_dim] table. Parameter names follow PEFT (<c>embedding.weight</c>, <c>transform.0.weight</c> ...).
/// </summary>
public sealed class PrefixEncoder : VirtualTokenEncoder
{
    private readonly nn.Module<Tensor, Tensor>? _transform;

    public PrefixEncoder(PrefixTuningConfig config, Device device, Generator? gen)
        : base(nameof(PrefixEncoder), config.NumVirtualTokens!.Value, TableWidth(config), device)
    {
        long tokenDim = config.TokenDim!.Value, outWidth = 2L * config.NumLayers!.Value * tokenDim;
        using var noGrad = torch.no_grad();
        Embedding.weight.normal_(0, 1, gen);
        if (!HasProjection(config)) return;
        int hidden = config.EncoderHiddenSize!.Value;
        var first = new LinearLayer(tokenDim, hidden, true, device, ScalarType.Float32);
        var last = new LinearLayer(hidden, outWidth, true, device, ScalarType.Float32);
        InitLinear(first, gen);
        InitLinear(last, gen);
        _transform = nn.Sequential(("0", first), ("1", nn.Tanh()), ("2", last));
        register_module("transform", _transform);
    }

    /// <summary>The MLP exists only while training; a loaded adapter holds its (already projected) output.</summary>
    private static bool HasProjection(PrefixTuningConfig c) => c.PrefixProjection && !c.InferenceMode;

    private static long TableWidth(PrefixTuningConfig c) =>
        HasProjection(c) ? c.TokenDim!.Value : 2L * c.NumLayers!.Value * c.TokenDim!.Value;

    public override bool IsTableOnly => _transform is null;

    protected override Tensor Head(Tensor table) => _transform!.forward(table);
}
