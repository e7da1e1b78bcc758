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

    /// <summary>
    /// Adds prefilled sequences (each cache batch 1; this takes ownership of them). One copy of the running cache for all
    /// of them, into buffers with spare room so the next decode steps write in place: joining one by one copied the
    /// whole cache per joined sequence, and once more at the next step to regain room.
    /// </summary>
    public void Join(IReadOnlyList<(InferenceRequest Request, KvCache Cache)> joins)
    {
        if (joins.Count == 0) return;
        _names = null;
        long target = Math.Max(Length, joins.Max(j => j.Cache.Length));
        int old = Rows.Count, total = old + joins.Count;
        long capacity = target + KvCache.Room(target);
        using (var scope = torch.NewDisposeScope())
        {
            var device = joins[0].Cache.Get(0)!.Value.Key.device;
            var merged = new KvCache(_layers);
            for (int l = 0; l < _layers; l++)
            {
                var (k1, _) = joins[0].Cache.Get(l)!.Value;
                long[] shape = [total, k1.shape[1], capacity, k1.shape[3]];
                var keys = torch.empty(shape, k1.dtype, device);
                var values = torch.empty(shape, k1.dtype, device);
                // Padding is attended with weight 0, but 0 × NaN is NaN: the filled part must hold numbers.
                keys.narrow(2, 0, target).zero_();
                values.narrow(2, 0, target).zero_();
                if (_cache?.Get(l) is (Tensor k0, Tensor v0))
                {
                    PlaceRight(keys, k0, 0, 2, target);
                    PlaceRight(values, v0, 0, 2, target);
                }
                for (int j = 0; j < joins.Count; j++)
                {
                    var (k, v) = joins[j].Cache.Get(l)!.Value;
                    PlaceRight(keys, k, old + j, 2, target);
                    PlaceRight(values, v, old + j, 2, target);
                }
                merged.Adopt(l, keys, values, target);
            }
            var mask = torch.zeros(total, target, dtype: ScalarType.Int64, device: device);
            if (_mask is not null) PlaceRight(mask, _mask, 0, 1, target);
            for (int j = 0; j < joins.Count; j++)
                using (var ones = torch.ones(1, joins[j].Cache.Length, dtype: ScalarType.Int64, device: device))
                    PlaceRight(mask, ones, old + j, 1, target);
            _cache?.Dispose();
            _mask?.Dispose();
            _cache = merged;
            _mask = mask.DetachFromDisposeScope();
        }
        foreach (var (request, cache) in joins)
        {
            cache.Dispose();
            Rows.Add(request);
        }
    }

    /// <summary>Copies <paramref name="part"/> into rows from <paramref name="firstRow"/> of <paramref name="buffer"/>, right-aligned at <paramref name="end"/> along <paramref name="dim"/> (left padding).</summary>
    private static void PlaceRight(Tensor buffer, Tensor part, long firstRow, int dim, long end)
    {
        long rows = part.shape[0], len = part.shape[dim];
        using var target = buffer.narrow(0, firstRow, rows).narrow(dim, end - len, len);
        target.copy_(part);
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
                long capacity = len + KvCache.Room(len);
                trimmed.Adopt(l, KvCache.Grow(k.narrow(2, firstUsed, len), capacity), KvCache.Grow(v.narrow(2, firstUsed, len), capacity), len);
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
