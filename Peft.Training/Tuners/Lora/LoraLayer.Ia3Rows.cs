using Peft.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.Lora;

/// <summary>
/// IA³ adapters riding in a LoRA serving model, for mixed batches only: a layer can carry one adapter kind, so the
/// serving model keeps IA³ vectors here, next to the LoRA factors of the same layer. In a mixed forward each row's input
/// (feed-forward layers) or output is multiplied by its adapter's vector, rows without one by 1 (exact), which costs one
/// elementwise product per IA³ layer: IA³ rows share the batch with LoRA and base rows. Outside mixed batches these
/// vectors are inert (they are never in <see cref="ActiveAdapters"/>).
/// </summary>
public sealed partial class LoraLayer
{
    private readonly Dictionary<string, (Parameter Vector, bool Feedforward)> _ia3Rows = new(StringComparer.Ordinal);

    public bool HasIa3(string adapter) => _ia3Rows.ContainsKey(adapter);

    /// <summary>The IA³ vector: [1, in] for a feed-forward layer (scales the input), else [out, 1] (scales the output).</summary>
    public Parameter Ia3Vector(string adapter) => _ia3Rows[adapter].Vector;

    internal void AddIa3(string name, bool feedforward)
    {
        if (_linear is null) throw new PeftConfigException("IA3 adapters apply to Linear/Conv1D layers only");
        if (_settings.ContainsKey(name) || _ia3Rows.ContainsKey(name)) throw new InvalidOperationException($"adapter '{name}' already exists on this layer");
        long[] shape = feedforward ? [1, InFeatures] : [OutFeatures, 1];
        using var noGrad = torch.no_grad();
        ReleaseRowCache();
        _ia3Rows[name] = (new Parameter(torch.ones(shape, ScalarType.Float32, BaseWeight.device), requires_grad: false), feedforward);
    }

    private bool RemoveIa3(string name)
    {
        if (!_ia3Rows.Remove(name, out var entry)) return false;
        ReleaseRowCache();
        entry.Vector.Dispose();
        return true;
    }

    private void DisposeIa3()
    {
        foreach (var (v, _) in _ia3Rows.Values) v.Dispose();
        _ia3Rows.Clear();
    }

    /// <summary>t · scale in float32 (IA³ vectors are), back in t's dtype; no casts when t is float32 already.</summary>
    private static Tensor ScaleRows(Tensor t, Tensor scale) =>
        t.dtype == ScalarType.Float32 ? t * scale : (t.to(ScalarType.Float32) * scale).to(t.dtype);

    /// <summary>Per-row IA³ factors shaped to broadcast over <paramref name="like"/> ([rows, ..., features]); null when no row has one here.</summary>
    private Tensor? Ia3RowScales(IReadOnlyList<string> rows, bool feedforward, long features, Tensor like)
    {
        if (_ia3Rows.Count == 0) return null;
        if (RowCached(rows, feedforward ? "ia3.in" : "ia3.out", () => GatherIa3(rows, feedforward, features, like.device) is { } g ? [g] : null)
            is not [var scale]) return null;
        var shape = Enumerable.Repeat(1L, (int)like.dim()).ToArray();
        shape[0] = rows.Count;
        shape[^1] = features;
        return scale.view(shape);
    }

    /// <summary>[rows, features]: each row's IA³ vector, 1 for rows without one; null when no row has one here.</summary>
    private Tensor? GatherIa3(IReadOnlyList<string> rows, bool feedforward, long features, Device device)
    {
        var names = rows.Distinct().Where(n => _ia3Rows.TryGetValue(n, out var e) && e.Feedforward == feedforward).ToList();
        if (names.Count == 0) return null;
        using var scope = torch.NewDisposeScope();
        var scale = torch.ones(rows.Count, features, ScalarType.Float32, device);
        foreach (var name in names)
        {
            var idx = torch.tensor(rows.Select((n, i) => (n, i)).Where(t => t.n == name).Select(t => (long)t.i).ToArray(), device: device);
            scale.index_copy_(0, idx, _ia3Rows[name].Vector.flatten().unsqueeze(0).expand(idx.shape[0], features));
        }
        return scale.MoveToOuterDisposeScope();
    }
}
