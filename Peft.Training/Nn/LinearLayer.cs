using Peft.Training.Quantization;
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
    public bool FanInFanOut { get; private set; }
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
        if (_quant is not null) return QuantizedLinear.Forward(this, x);
        if (!FanInFanOut) return nn.functional.linear(x, _weight, _bias);
        var y = x.matmul(_weight);
        return _bias is null ? y : y.add_(_bias);
    }

    public override Tensor forward(Tensor x) => Tuner is null ? BaseForward(x) : Tuner.Forward(x);

    /// <summary>The weight as [out, in] regardless of storage layout (a view; dequantised to a new tensor when quantised).</summary>
    public Tensor WeightOutIn() => _quant is not null ? Quantized!.Dequantize(ComputeDType) : FanInFanOut ? _weight.t() : _weight;

    private QuantizedWeight? _quant;
    private ScalarType? _computeDType;

    /// <summary>The quantised base weight (its tensors are this layer's <c>weight</c> parameter and buffers), or null.</summary>
    public QuantizedWeight? Quantized
    {
        get
        {
            if (_quant is null) return null;
            // Read through the registry so a module.to(device) move is always seen.
            _quant.Packed = _weight;
            _quant.Absmax = get_buffer("absmax")!;
            if (_quant.NestedAbsmax is not null) _quant.NestedAbsmax = get_buffer("nested_absmax")!;
            return _quant;
        }
    }

    /// <summary>dtype the forward multiplies in: the weight's, or for a quantised weight the dtype it is dequantised to.</summary>
    public ScalarType ComputeDType
    {
        get => _computeDType ?? _weight.dtype;
        set => _computeDType = value;
    }

    /// <summary>
    /// Replaces the float weight by <paramref name="q"/>: the packed tensor becomes the frozen <c>weight</c> parameter
    /// (like bitsandbytes' Params4bit/Int8Params) and the scales become buffers, so device moves carry them along.
    /// A Conv1D weight must be given as [out, in]; the layer then behaves as a plain Linear (as transformers does).
    /// </summary>
    public void SetQuantized(QuantizedWeight q, ScalarType computeDType)
    {
        if (q.Shape[0] != OutFeatures || q.Shape[1] != InFeatures)
            throw new ArgumentException($"quantised weight is [{q.Shape[0]}, {q.Shape[1]}] but the layer is [{OutFeatures}, {InFeatures}] (out, in)");
        // The layer owns these now: a merge creates them inside a dispose scope that must not free them.
        q.Packed.DetachFromDisposeScope();
        q.Absmax.DetachFromDisposeScope();
        q.NestedAbsmax?.DetachFromDisposeScope();
        var old = _weight;
        _weight = new Parameter(q.Packed, requires_grad: false);
        _weight.DetachFromDisposeScope();
        Unregister("_internal_params", "weight");
        register_parameter("weight", _weight);
        if (!ReferenceEquals(old, q.Packed)) old.Dispose();
        DropQuantBuffers();
        register_buffer("absmax", q.Absmax);
        if (q.NestedAbsmax is not null) register_buffer("nested_absmax", q.NestedAbsmax);
        _quant = q;
        _computeDType = computeDType;
        FanInFanOut = false;
    }

    /// <summary>Turns a quantised layer back into a plain one holding <paramref name="w"/> ([out, in]), e.g. after dequantising.</summary>
    public void SetFloatWeight(Tensor w)
    {
        if (_quant is null) throw new InvalidOperationException("the layer is not quantised");
        var old = _weight;
        _weight = new Parameter(w.detach().clone().DetachFromDisposeScope(), requires_grad: false);
        _weight.DetachFromDisposeScope();
        Unregister("_internal_params", "weight");
        register_parameter("weight", _weight);
        old.Dispose();
        DropQuantBuffers();
        _quant = null;
        _computeDType = null;
    }

    /// <summary>Casts the bias (kept apart from a quantised weight, which must not be cast).</summary>
    public void CastBias(ScalarType dtype)
    {
        if (_bias is null || _bias.dtype == dtype) return;
        var old = _bias;
        _bias = new Parameter(old.detach().to(dtype).DetachFromDisposeScope(), requires_grad: false);
        _bias.DetachFromDisposeScope();
        Unregister("_internal_params", "bias");
        register_parameter("bias", _bias);
        old.Dispose();
    }

    private void DropQuantBuffers()
    {
        if (_quant is null) return;
        foreach (var name in new[] { "absmax", "nested_absmax" })
        {
            var t = get_buffer(name);
            Unregister("_internal_buffers", name);
            t?.Dispose();
        }
    }

    // TorchSharp's register_parameter/register_buffer refuse an existing name and offer no removal, but swapping the
    // float weight for its packed form (as bitsandbytes swaps Parameter for Params4bit) has to keep the name.
    private static readonly System.Reflection.BindingFlags Private =
        System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance;

    private void Unregister(string registry, string name)
    {
        var dict = typeof(nn.Module).GetField(registry, Private)?.GetValue(this)
            ?? throw new InvalidOperationException($"TorchSharp.Module has no {registry} registry");
        var type = dict.GetType();
        var contains = type.GetMethod("ContainsKey", [typeof(string)]);
        var remove = type.GetMethod("Remove", [typeof(string)]);
        if (contains is null || remove is null) throw new InvalidOperationException($"TorchSharp.Module.{registry} cannot remove entries");
        if ((bool)contains.Invoke(dict, [name])!) remove.Invoke(dict, [name]);
    }

    /// <summary>The weight in its storage layout as float32 (dequantised when quantised): what merges add to.</summary>
    public Tensor ReadWeight() => _quant is not null ? Quantized!.Dequantize(ScalarType.Float32) : _weight.to(ScalarType.Float32);

    /// <summary>
    /// Writes a new weight (storage layout). A quantised layer requantises it with the same method, which is lossy
    /// (bitsandbytes' merge does the same and warns).
    /// </summary>
    public void WriteWeight(Tensor w)
    {
        if (_quant is null) { _weight.copy_(w); return; }
        var q = QuantizedWeight.Quantize(w, _quant.Method, _quant.DoubleQuant);
        QuantizedLinear.Warn("merging into a quantised weight dequantises, adds and requantises it: the result is not exact");
        SetQuantized(q, ComputeDType);
    }
}
