using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Serving;

/// <summary>
/// The sequences decoding together and their shared KV cache [rows, kv_heads, length, head_dim], left-padded: a
/// sequence joins with the cache of its own prefill (padded on the left, or the batch is, to a common length) and
/// leaves by row selection; the attention mask zeroes every padded slot and positions come from the mask, so each
/// row computes what it would alone. Columns that became padding in every row are trimmed away.
/// </summary>
internal sealed class RunningBatch : IDisposable
{
    private readonly int _layers;
    private KvCache? _cache;
    private Tensor? _mask;
    private StableRowAdapters? _names;

    public RunningBatch(int layers) => _layers = layers;

    /// <summary>
    /// The rows' adapter names, one instance while the rows stay the same: layers keep what they gather for it between
    /// decode steps. Rebuilt after a join or leave; loading, swapping or dropping an adapter clears what the layers
    /// concerned keep (LoraLayer.ReleaseRowCache), so the instance can stay.
    /// </summary>
    private StableRowAdapters Names => _names ??= new StableRowAdapters(Rows.Select(r => r.RowName).ToList());

    public List<InferenceRequest> Rows { get; } = new();
    public int Count => Rows.Count;
    public long Length => _mask?.shape[1] ?? 0;

    /// <summary>Adds a prefilled sequence; takes ownership of <paramref name="cache"/> (batch 1).</summary>
    public void Join(InferenceRequest request, KvCache cache)
    {
        long len = cache.Length;
        _names = null;
        using var scope = torch.NewDisposeScope();
        var mask = torch.ones(1, len, dtype: ScalarType.Int64, device: cache.Get(0)!.Value.Key.device);
        if (_cache is null)
        {
            _cache = cache;
            _mask = mask.DetachFromDisposeScope();
            Rows.Add(request);
            return;
        }
        long target = Math.Max(len, Length);
        var merged = new KvCache(_layers);
        for (int l = 0; l < _layers; l++)
        {
            var (k0, v0) = _cache.Get(l)!.Value;
            var (k1, v1) = cache.Get(l)!.Value;
            merged.Set(l, torch.cat([PadLeft(k0, target, 2), PadLeft(k1, target, 2)], 0), torch.cat([PadLeft(v0, target, 2), PadLeft(v1, target, 2)], 0));
        }
        var newMask = torch.cat([PadLeft(_mask!, target, 1), PadLeft(mask, target, 1)], 0).DetachFromDisposeScope();
        _cache.Dispose();
        cache.Dispose();
        _mask!.Dispose();
        _cache = merged;
        _mask = newMask;
        Rows.Add(request);
    }

    private static Tensor PadLeft(Tensor t, long target, int dim)
    {
        long missing = target - t.shape[dim];
        if (missing == 0) return t.alias();
        var shape = t.shape.ToArray();
        shape[dim] = missing;
        return torch.cat([torch.zeros(shape, t.dtype, t.device), t], dim);
    }

    /// <summary>One decode step: each row's last token in, float32 logits [rows, vocab] out (on the CPU).</summary>
    public float[] Step(Func<ForwardArgs, IReadOnlyList<string>, ModelOutput> forward, out long vocab)
    {
        using var scope = torch.NewDisposeScope();
        var device = _mask!.device;
        var last = Rows.Select(r => (long)r.Generated[^1].TokenId).ToArray();
        var ids = torch.tensor(last, device: device).view(Rows.Count, 1);
        var mask = torch.cat([_mask, torch.ones(Rows.Count, 1, dtype: ScalarType.Int64, device: device)], 1);
        using Scalar one = 1;   // held past the native call: an implicit temporary can be finalized mid-call
        var positions = mask.sum(-1, keepdim: true) - one;
        using var output = forward(new ForwardArgs { InputIds = ids, AttentionMask = mask, PositionIds = positions, Cache = _cache }, Names);
        var logits = output.Logits.select(1, -1).to(ScalarType.Float32).cpu();
        vocab = logits.shape[1];
        _mask.Dispose();
        _mask = mask.DetachFromDisposeScope();
        return logits.data<float>().ToArray();
    }

    /// <summary>Drops the rows not in <paramref name="keep"/> (indices into <see cref="Rows"/>), then trims shared padding.</summary>
    public void Keep(IReadOnlyList<int> keep)
    {
        if (keep.Count == Rows.Count) return;
        _names = null;
        var kept = keep.Select(i => Rows[i]).ToList();
        Rows.Clear();
        Rows.AddRange(kept);
        if (kept.Count == 0)
        {
            _cache?.Dispose();
            _mask?.Dispose();
            _cache = null;
            _mask = null;
            return;
        }
        using var scope = torch.NewDisposeScope();
        var index = torch.tensor(keep.Select(i => (long)i).ToArray(), device: _mask!.device);
        _cache!.IndexSelect(index);
        var mask = _mask.index_select(0, index);
        // Leading columns that are padding in every remaining row carry nothing: cut them from mask and cache.
        long firstUsed = mask.sum(0L, false).nonzero()[0, 0].item<long>();   // 0L: a bare 0 binds to sum(ScalarType)
        if (firstUsed > 0)
        {
            long len = mask.shape[1] - firstUsed;
            var trimmed = new KvCache(_layers);
            for (int l = 0; l < _layers; l++)
            {
                var (k, v) = _cache.Get(l)!.Value;
                trimmed.Set(l, k.narrow(2, firstUsed, len).contiguous(), v.narrow(2, firstUsed, len).contiguous());
            }
            _cache.Dispose();
            _cache = trimmed;
            mask = mask.narrow(1, firstUsed, len).contiguous();
        }
        _mask.Dispose();
        _mask = mask.DetachFromDisposeScope();
    }

    public void Dispose()
    {
        _cache?.Dispose();
        _mask?.Dispose();
    }
}
