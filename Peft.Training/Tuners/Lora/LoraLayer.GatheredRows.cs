using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.Lora;

public sealed partial class LoraLayer
{
    // Per-row tensors gathered for the rows of one StableRowAdapters instance (slot → tensors; null = doesn't apply).
    private object? _rowCacheKey;
    private readonly Dictionary<string, Tensor[]?> _rowCache = new(StringComparer.Ordinal);

    /// <summary>
    /// <paramref name="build"/>'s tensors, kept across forwards while the caller passes the same
    /// <see cref="StableRowAdapters"/> under no_grad (a decode loop rebuilds nothing between steps); built afresh for
    /// any other rows. Kept tensors are detached from the caller's dispose scope and freed on the next key.
    /// </summary>
    private Tensor[]? RowCached(IReadOnlyList<string> rows, string slot, Func<Tensor[]?> build)
    {
        if (rows is not StableRowAdapters || torch.is_grad_enabled()) return build();
        if (!ReferenceEquals(_rowCacheKey, rows))
        {
            ReleaseRowCache();
            _rowCacheKey = rows;
        }
        if (!_rowCache.TryGetValue(slot, out var kept))
        {
            kept = build();
            if (kept is not null) foreach (var t in kept) t.DetachFromDisposeScope();
            _rowCache[slot] = kept;
        }
        return kept;
    }

    /// <summary>Frees the gathered per-row tensors (the batch ended, or an adapter was added, swapped or removed).</summary>
    internal void ReleaseRowCache()
    {
        foreach (var kept in _rowCache.Values)
            if (kept is not null) foreach (var t in kept) t.Dispose();
        _rowCache.Clear();
        _rowCacheKey = null;
    }

    /// <summary>
    /// Mixed-batch LoRA for many distinct adapters at once (as Punica's / S-LoRA's gathered matmul): each row's A and B
    /// are gathered into [rows, in, r] and [rows, r, out] stacks (zeros for rows without one here, zero-padded to the
    /// largest rank, which adds exact zeros; B pre-multiplied by the row's scaling) and applied with two batched
    /// matmuls. The per-adapter loop costs four small ops per distinct adapter and layer, which at 32 adapters costs
    /// more than the base product itself; gathering anew every decode step costs a copy of every row's factors, which
    /// on a small model rivals the base weights' traffic, hence <see cref="RowCached"/>.
    /// Null when this batch doesn't qualify (training with dropout, an embedding layer, a B bias, or fewer than two
    /// distinct plain LoRA adapters), and the caller loops.
    /// </summary>
    private Tensor? GatheredForward(Tensor x, Tensor result, IReadOnlyList<string> rows)
    {
        if (_linear is null || (Host.AsModule.training && rows.Any(r => _settings.TryGetValue(r, out var s) && s.Dropout > 0))) return null;
        if (RowCached(rows, "lora", () => GatherRows(rows, x.device)) is not [var stackA, var stackB]) return null;
        var dtype = stackA.dtype;
        var xa = (x.dtype == dtype ? x : x.to(dtype)).reshape(rows.Count, -1, InFeatures).bmm(stackA);   // [rows, t, r]
        // Not baddbmm: TorchSharp 0.107's binding passes its operands in the wrong order (self is taken as batch1).
        var delta = xa.bmm(stackB).view(result.shape);
        return result + (delta.dtype == result.dtype ? delta : delta.to(result.dtype));
    }

    /// <summary>
    /// Every row's Aᵀ as [rows, in, r] and s·Bᵀ as [rows, r, out] (in that order), or null when the rows don't qualify. Built from
    /// transposed views in two stack copies and one scale product per layer, whatever the number of distinct adapters:
    /// a batch's rows change on every join, so this runs often.
    /// </summary>
    private Tensor[]? GatherRows(IReadOnlyList<string> rows, Device device)
    {
        // DoRA rows get zeros here and their own delta afterwards (MixedBatchForward).
        var present = rows.Where(n => _settings.TryGetValue(n, out var s) && !s.UseDora).Distinct().ToList();
        if (present.Count < 2) return null;
        int rMax = 0;
        foreach (var name in present)
        {
            var s = _settings[name];
            if (_loraB![name].bias is not null) return null;
            rMax = Math.Max(rMax, s.R);
        }
        var dtype = Factors(present[0]).A.dtype;
        if (rows is StableRowAdapters && !torch.is_grad_enabled()) return PooledRows(rows, present, rMax, dtype, device);
        using var scope = torch.NewDisposeScope();
        var zeroA = zeros([InFeatures, rMax], dtype, device);
        var zeroB = zeros([rMax, OutFeatures], dtype, device);
        var perName = new Dictionary<string, (Tensor A, Tensor B)>(StringComparer.Ordinal);
        var rowsA = new Tensor[rows.Count];
        var rowsB = new Tensor[rows.Count];
        var scales = new float[rows.Count];
        for (int i = 0; i < rows.Count; i++)
        {
            if (!_settings.TryGetValue(rows[i], out var s) || s.UseDora) { (rowsA[i], rowsB[i]) = (zeroA, zeroB); continue; }
            if (!perName.TryGetValue(rows[i], out var f))
            {
                var (a, b) = Factors(rows[i]);
                f = s.R == rMax ? (a.t(), b.t()) : (nn.functional.pad(a, [0, 0, 0, rMax - s.R]).t(), nn.functional.pad(b, [0, rMax - s.R]).t());
                perName[rows[i]] = f;
            }
            (rowsA[i], rowsB[i], scales[i]) = (f.A, f.B, (float)s.Scaling);
        }
        var stackB = stack(rowsB);
        stackB.mul_(tensor(scales, device: device).to(dtype).view(rows.Count, 1, 1));
        return [stack(rowsA).MoveToOuterDisposeScope(), stackB.MoveToOuterDisposeScope()];
    }
}
