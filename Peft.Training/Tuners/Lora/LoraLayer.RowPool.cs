using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.Lora;

public sealed partial class LoraLayer
{
    private RowPool? _pool;

    /// <summary>
    /// Serving's adapters in one place per layer: each adapter a batch has gathered keeps a slot holding its Aᵀ
    /// [in, rank] and s·Bᵀ [rank, out], zero-padded to the pool's rank; slot 0 is zeros (base rows, DoRA rows). A new
    /// batch composition (every join and leave) is then two index_selects per layer instead of a stack of per-row views
    /// and a pad per distinct adapter (hundreds of small ops per step at 32 adapters). Slots are written when an adapter
    /// is first gathered and forgotten when it is deleted or swapped; the pool only grows in rank. The price is a second
    /// copy of the served adapters' factors (padded to the pool's rank) while a batch runs; it is freed when it empties.
    /// </summary>
    private sealed class RowPool(Tensor a, Tensor b) : IDisposable
    {
        public Tensor A = a;   // [capacity, in, rank]
        public Tensor B = b;   // [capacity, rank, out]
        public readonly Dictionary<string, (int Slot, int R, double Scaling)> Slots = new(StringComparer.Ordinal);
        public readonly Stack<int> Free = new();
        public int Used = 1;
        public long Rank => A.shape[2];
        public long Capacity => A.shape[0];

        public void Dispose()
        {
            A.Dispose();
            B.Dispose();
        }
    }

    /// <summary>The rows' [rows, in, r] and [rows, r, out] stacks from the pool (see <see cref="RowPool"/>).</summary>
    private Tensor[] PooledRows(IReadOnlyList<string> rows, List<string> present, int rMax, ScalarType dtype, Device device)
    {
        // Device is a class: compare type and index, not references.
        if (_pool is { } old && (old.Rank < rMax || old.A.dtype != dtype || old.A.device_type != device.type || old.A.device_index != device.index))
            DropRowPool();
        _pool ??= new RowPool(
            zeros([Math.Max(8, present.Count + 1), InFeatures, rMax], dtype, device).DetachFromDisposeScope(),
            zeros([Math.Max(8, present.Count + 1), rMax, OutFeatures], dtype, device).DetachFromDisposeScope());
        foreach (var name in present) EnsurePooled(_pool, name);
        var slots = new long[rows.Count];
        for (int i = 0; i < rows.Count; i++)
            slots[i] = _pool.Slots.TryGetValue(rows[i], out var e) ? e.Slot : 0;   // only plain LoRA adapters get slots
        using var index = tensor(slots, device: device);
        return [_pool.A.index_select(0, index), _pool.B.index_select(0, index)];
    }

    private void EnsurePooled(RowPool pool, string name)
    {
        var s = _settings[name];
        if (pool.Slots.TryGetValue(name, out var e) && e.R == s.R && e.Scaling == s.Scaling) return;
        int slot = e.Slot > 0 ? e.Slot : pool.Free.Count > 0 ? pool.Free.Pop() : pool.Used++;
        if (slot >= pool.Capacity) Grow(pool, pool.Capacity * 2);
        using var scope = torch.NewDisposeScope();
        var (a, b) = Factors(name);
        var slotA = pool.A[slot];
        var slotB = pool.B[slot];
        slotA.zero_();
        slotB.zero_();
        slotA.narrow(1, 0, s.R).copy_(a.t());
        using Scalar scaling = s.Scaling;
        slotB.narrow(0, 0, s.R).copy_(b.t().mul(scaling));
        pool.Slots[name] = (slot, s.R, s.Scaling);
    }

    private static void Grow(RowPool pool, long capacity)
    {
        var a = zeros([capacity, pool.A.shape[1], pool.A.shape[2]], pool.A.dtype, pool.A.device);
        var b = zeros([capacity, pool.B.shape[1], pool.B.shape[2]], pool.B.dtype, pool.B.device);
        a.narrow(0, 0, pool.Capacity).copy_(pool.A);
        b.narrow(0, 0, pool.Capacity).copy_(pool.B);
        pool.Dispose();
        pool.A = a.DetachFromDisposeScope();
        pool.B = b.DetachFromDisposeScope();
    }

    /// <summary>An adapter's weights or rank changed, or it is gone: its slot is rewritten when next gathered.</summary>
    private void ForgetPooled(string adapter)
    {
        if (_pool is not null && _pool.Slots.Remove(adapter, out var e)) _pool.Free.Push(e.Slot);
    }

    /// <summary>Frees the pool (the server went idle, or the layer is detached).</summary>
    internal void DropRowPool()
    {
        _pool?.Dispose();
        _pool = null;
    }
}
