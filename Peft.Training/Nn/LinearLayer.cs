using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Nn;

/// <summary>
/// <c>nn.Linear</c> (weight [out, in]) or, with <see cref="FanInFanOut"/>, GPT-2's <c>Conv1D</c> (weight [in, out]).
/// Parameter names are <c>weight</c> and <c>bias</c> as in Hugging Face state dicts. A tuner may be attached.
/// </summary>
public sealed class LinearLayer : nn.Module<Tensor, Tensor>, IAdaptableLayer
{
    private Parameter _weight;
    private Parameter? _bias;

    public long InFeatures { get; }
    public long OutFeatures { get; }
    /// <summary>True for GPT-2 Conv1D: the weight is stored transposed as [in, out].</summary>
    public bool FanInFanOut { get; }
    public ILayerTuner? Tuner { get; set; }
    public nn.Module AsModule => this;

    public LinearLayer(long inFeatures, long outFeatures, bool hasBias, Device device, ScalarType dtype, bool fanInFanOut = false)
        : base(nameof(LinearLayer))
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        FanInFanOut = fanInFanOut;
        long[] shape = fanInFanOut ? [inFeatures, outFeatures] : [outFeatures, inFeatures];
        _weight = new Parameter(torch.empty(shape, dtype, device));
        register_parameter("weight", _weight);
        if (hasBias)
        {
            _bias = new Parameter(torch.empty([outFeatures], dtype, device));
            register_parameter("bias", _bias);
        }
    }

    /// <summary>A linear layer that shares (ties) an existing [out, in] weight, e.g. lm_head tied to the embeddings.</summary>
    public LinearLayer(Parameter tiedWeight) : base(nameof(LinearLayer))
    {
        OutFeatures = tiedWeight.shape[0];
        InFeatures = tiedWeight.shape[1];
        _weight = tiedWeight;
        register_parameter("weight", _weight);
    }

    public Parameter weight => _weight;
    public Parameter? bias => _bias;

    public Tensor BaseForward(Tensor x)
    {
        if (!FanInFanOut) return nn.functional.linear(x, _weight, _bias);
        var y = x.matmul(_weight);
        return _bias is null ? y : y.add_(_bias);
    }

    public override Tensor forward(Tensor x) => Tuner is null ? BaseForward(x) : Tuner.Forward(x);

    /// <summary>The weight as [out, in] regardless of storage layout (a view, not a copy).</summary>
    public Tensor WeightOutIn() => FanInFanOut ? _weight.t() : _weight;
}
