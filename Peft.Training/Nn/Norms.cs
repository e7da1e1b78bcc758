using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Nn;

/// <summary>Llama's RMSNorm: computed in float32, then scaled by <c>weight</c> in the input dtype.</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter _weight;
    private readonly double _eps;

    public RmsNorm(long dim, double eps, Device device, ScalarType dtype) : base(nameof(RmsNorm))
    {
        _eps = eps;
        _weight = new Parameter(torch.empty([dim], dtype, device));
        register_parameter("weight", _weight);
    }

    public Parameter weight => _weight;

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var dtype = x.dtype;
        var h = x.to(ScalarType.Float32);
        // Scalars held by locals until the native calls return: TorchSharp leaves an implicit temporary to its finalizer, which under GC pressure can free it mid-call ("Unknown scalar type").
        using Scalar two = 2, eps = _eps;
        var variance = h.pow(two).mean([-1L], keepdim: true);
        h = h * torch.rsqrt(variance + eps);
        return (_weight * h.to(dtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>LayerNorm with HF names <c>weight</c>/<c>bias</c>.</summary>
public sealed class LayerNormLayer : nn.Module<Tensor, Tensor>
{
    private readonly Parameter _weight;
    private readonly Parameter? _bias;
    private readonly double _eps;
    private readonly long _dim;

    public LayerNormLayer(long dim, double eps, Device device, ScalarType dtype, bool hasBias = true) : base(nameof(LayerNormLayer))
    {
        _dim = dim;
        _eps = eps;
        _weight = new Parameter(torch.empty([dim], dtype, device));
        register_parameter("weight", _weight);
        if (hasBias)
        {
            _bias = new Parameter(torch.empty([dim], dtype, device));
            register_parameter("bias", _bias);
        }
    }

    public Parameter weight => _weight;
    public Parameter? bias => _bias;

    public override Tensor forward(Tensor x) => nn.functional.layer_norm(x, [_dim], _weight, _bias, _eps);
}
