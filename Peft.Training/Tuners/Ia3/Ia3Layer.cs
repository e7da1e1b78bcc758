using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.Ia3;

/// <summary>
/// IA³ on one Linear / GPT-2 Conv1D layer: a vector <c>ia3_l.{adapter}</c> that scales the input ([1, in], feed-forward
/// layers) or the output ([out, 1], bias included) of the base layer. Several active adapters multiply.
/// </summary>
public sealed class Ia3Layer : IAdapterLayer
{
    private readonly LinearLayer _host;
    private readonly ParameterDict _vectors = new();

    public Ia3Layer(LinearLayer host, bool isFeedforward)
    {
        if (host.Tuner is not null) throw new InvalidOperationException("layer already carries an adapter");
        _host = host;
        IsFeedforward = isFeedforward;
        host.register_module("ia3_l", _vectors);
        host.Tuner = this;
    }

    public LinearLayer Host => _host;
    /// <summary>Fixed when the layer is created (by the first adapter's config), as in PEFT.</summary>
    public bool IsFeedforward { get; }
    public List<string> ActiveAdapters { get; } = new();
    public List<string> MergedAdapters { get; } = new();
    public bool Merged => MergedAdapters.Count > 0;
    public bool Disabled { get; set; }
    public IEnumerable<string> Adapters => _vectors.Keys;

    public bool Has(string adapter) => _vectors.ContainsKey(adapter);

    public Parameter Vector(string adapter) => _vectors[adapter];

    public void AddAdapter(string name, bool initOnes, Generator? generator)
    {
        if (Has(name)) throw new InvalidOperationException($"adapter '{name}' already exists on this layer");
        long[] shape = IsFeedforward ? [1, _host.InFeatures] : [_host.OutFeatures, 1];
        using var noGrad = torch.no_grad();
        var v = initOnes
            ? torch.ones(shape, ScalarType.Float32, _host.weight.device)
            : torch.randn(shape, ScalarType.Float32, _host.weight.device, generator: generator);
        _vectors.Add(name, new Parameter(v));
    }

    public void DeleteAdapter(string name)
    {
        if (MergedAdapters.Contains(name)) throw new InvalidOperationException($"adapter '{name}' is merged; unmerge it before deleting");
        if (!_vectors.TryGetValue(name, out var p)) return;
        _vectors.Remove(name);
        p.Dispose();
        ActiveAdapters.Remove(name);
    }

    public void Detach()
    {
        _host.register_module("ia3_l", null!);
        _host.Tuner = null;
        _vectors.Dispose(); // unregistered: free the vectors now, not at finalization
    }

    public Tensor Forward(Tensor x)
    {
        if (Disabled)
        {
            if (Merged) Unmerge();
            return _host.BaseForward(x);
        }
        if (Merged) return _host.BaseForward(x);
        var active = ActiveAdapters.Where(Has).ToList();
        if (active.Count == 0) return _host.BaseForward(x);
        using var scope = torch.NewDisposeScope();
        var scale = _vectors[active[0]].flatten();
        foreach (var name in active.Skip(1)) scale = scale * _vectors[name].flatten();
        var inDtype = x.dtype;
        Tensor result;
        if (IsFeedforward)
            result = _host.BaseForward((x.to(scale.dtype) * scale).to(_host.ComputeDType));
        else
            result = _host.BaseForward(x).to(scale.dtype) * scale;
        return result.to(inDtype).MoveToOuterDisposeScope();
    }

    /// <summary>The vector shaped to multiply the stored weight (Conv1D stores [in, out], so it is transposed).</summary>
    private Tensor WeightFactor(string adapter)
    {
        var l = _vectors[adapter].detach();
        return _host.FanInFanOut ? l.t() : l;
    }

    public void Merge(IReadOnlyList<string>? adapters = null, bool safe = false)
    {
        using var noGrad = torch.no_grad();
        foreach (var name in adapters ?? ActiveAdapters)
        {
            if (!Has(name) || MergedAdapters.Contains(name)) continue;
            using var scope = torch.NewDisposeScope();
            var w = _host.Quantized is null ? _host.weight : _host.ReadWeight();
            var merged = w * WeightFactor(name).to(w.dtype);
            if (safe && !merged.isfinite().all().item<bool>())
                throw new InvalidOperationException($"NaNs or infinities detected when merging adapter '{name}'; the adapter seems broken");
            _host.WriteWeight(merged);
            // Output scaling also scales the bias; input scaling leaves it alone.
            if (!IsFeedforward && _host.bias is { } b) b.mul_(_vectors[name].detach().reshape(b.shape).to(b.dtype));
            MergedAdapters.Add(name);
        }
    }

    /// <summary>Divides merged vectors out again (last merged first); PEFT adds 1e-8 to avoid division by zero, so this is inexact.</summary>
    public void Unmerge()
    {
        using var noGrad = torch.no_grad();
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar divEps = 1e-8;
        while (MergedAdapters.Count > 0)
        {
            string name = MergedAdapters[^1];
            MergedAdapters.RemoveAt(MergedAdapters.Count - 1);
            using var scope = torch.NewDisposeScope();
            var w = _host.Quantized is null ? _host.weight : _host.ReadWeight();
            _host.WriteWeight(w / (WeightFactor(name) + divEps).to(w.dtype));
            if (!IsFeedforward && _host.bias is { } b) b.div_((_vectors[name].detach().reshape(b.shape) + divEps).to(b.dtype));
        }
    }
}
