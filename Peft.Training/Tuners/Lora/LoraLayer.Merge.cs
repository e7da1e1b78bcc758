using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.Lora;

public sealed partial class LoraLayer
{
    /// <summary>ΔW = s·B·A in [out, in] layout (embeddings: [vocab, dim]), computed in float32.</summary>
    public Tensor DeltaWeightOutIn(string adapter)
    {
        using var scope = torch.NewDisposeScope();
        var (a, b) = Factors(adapter);
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar scaling = _settings[adapter].Scaling;
        var delta = b.to(ScalarType.Float32).matmul(a.to(ScalarType.Float32)) * scaling;
        return delta.MoveToOuterDisposeScope();
    }

    /// <summary>ΔW in the host weight's storage layout (transposed for Conv1D and embeddings).</summary>
    public Tensor DeltaWeight(string adapter)
    {
        using var scope = torch.NewDisposeScope();
        var d = DeltaWeightOutIn(adapter);
        bool transpose = IsEmbedding || _linear!.FanInFanOut;
        return (transpose ? d.t().contiguous() : d).MoveToOuterDisposeScope();
    }

    /// <summary>‖W + s·B·A‖₂ per output row, detached (DoRA treats the norm as a constant, paper §4.3).</summary>
    internal Tensor WeightNorm(string adapter)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var w = _linear!.WeightOutIn().to(ScalarType.Float32) + DeltaWeightOutIn(adapter);
        return w.norm(1, keepdim: false, p: 2).detach().MoveToOuterDisposeScope();
    }

    /// <summary>DoRA's addition to the base output: (m/‖W'‖ − 1)·(x·Wᵀ) + (m/‖W'‖)·s·B·A·x (no base bias).</summary>
    private Tensor DoraDelta(string adapter, Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var s = _settings[adapter];
        var lora = _loraB![adapter].forward(_loraA![adapter].forward(x));
        var scale = (Magnitude(adapter)! / WeightNorm(adapter)).view(1, -1);
        var baseNoBias = nn.functional.linear(x, _linear!.WeightOutIn().to(ScalarType.Float32));
        using Scalar one = 1, scaling = s.Scaling;
        var delta = (scale - one) * baseNoBias + scale * lora * scaling;
        return delta.MoveToOuterDisposeScope();
    }

    /// <summary>Adds the active (or given) adapters into the base weight. <paramref name="safe"/> checks for non-finite results first.</summary>
    public void Merge(IReadOnlyList<string>? adapters = null, bool safe = false)
    {
        using var noGrad = torch.no_grad();
        foreach (var name in adapters ?? ActiveAdapters)
        {
            if (!_settings.TryGetValue(name, out var s) || MergedAdapters.Contains(name)) continue;
            using var scope = torch.NewDisposeScope();
            var w = _linear?.ReadWeight() ?? BaseWeight;
            Tensor merged;
            if (s.UseDora)
            {
                var delta = DeltaWeight(name);
                var norm = WeightNorm(name);
                var factor = (Magnitude(name)! / norm).detach();
                var f = _linear!.FanInFanOut ? factor.view(1, -1) : factor.view(-1, 1);
                merged = (w.to(ScalarType.Float32) + delta) * f;
                _doraMergeFactors[name] = f.clone().DetachFromDisposeScope();
            }
            else
            {
                merged = w.to(ScalarType.Float32) + DeltaWeight(name);
            }
            if (safe && !merged.isfinite().all().item<bool>())
                throw new InvalidOperationException($"NaNs or infinities detected when merging adapter '{name}'; the adapter seems broken");
            if (_linear is not null) _linear.WriteWeight(merged);
            else w.copy_(merged);
            if (_linear is not null && _loraB![name].bias is { } lb && _linear.bias is { } hb)
            {
                using Scalar scaling = s.Scaling;
                hb.add_(lb * scaling);
            }
            MergedAdapters.Add(name);
        }
    }

    /// <summary>Subtracts merged adapters again, last merged first.</summary>
    public void Unmerge()
    {
        using var noGrad = torch.no_grad();
        while (MergedAdapters.Count > 0)
        {
            string name = MergedAdapters[^1];
            MergedAdapters.RemoveAt(MergedAdapters.Count - 1);
            using var scope = torch.NewDisposeScope();
            var w = _linear?.ReadWeight() ?? BaseWeight;
            var s = _settings[name];
            Tensor restored;
            if (s.UseDora && _doraMergeFactors.Remove(name, out var f))
            {
                restored = w.to(ScalarType.Float32) / f - DeltaWeight(name);
                f.Dispose();
            }
            else restored = w.to(ScalarType.Float32) - DeltaWeight(name);
            if (_linear is not null) _linear.WriteWeight(restored);
            else w.copy_(restored);
            if (_linear is not null && _loraB![name].bias is { } lb && _linear.bias is { } hb)
            {
                using Scalar scaling = s.Scaling;
                hb.sub_(lb * scaling);
            }
        }
    }
}
