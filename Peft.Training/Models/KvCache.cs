using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models;

/// <summary>
/// Per-layer key/value cache, tensors laid out [batch, kv_heads, seq, head_dim]. Tensors held here are detached from
/// dispose scopes so they outlive a forward pass; the cache disposes what it replaces. Prefix tuning seeds it with
/// the virtual-token keys/values before the first forward, which is how Hugging Face feeds prefixes
/// (<c>past_key_values</c>).
/// Under no_grad (generation, serving) a layer's tensors are buffers with spare room along the sequence axis: a decode
/// step writes its one position in place instead of copying the whole cache (<c>torch.cat</c> made every step cost
/// O(context): 40 → 114 ms per 8-row step of small50m from 16 to 816 cached positions). Readers get views of the
/// filled part. With gradients on (prefix tuning's trainable prefixes) it concatenates, as autograd needs.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor?[] _keys;
    private readonly Tensor?[] _values;
    private readonly long[] _lengths;   // filled positions per layer (≤ the buffers' sequence size)

    public KvCache(int numLayers)
    {
        _keys = new Tensor?[numLayers];
        _values = new Tensor?[numLayers];
        _lengths = new long[numLayers];
    }

    public int NumLayers => _keys.Length;

    /// <summary>Number of cached positions (0 when empty).</summary>
    public long Length => _keys[0] is null ? 0 : _lengths[0];

    public bool IsEmpty => _keys[0] is null;

    /// <summary>
    /// Encoder-decoder models: cross-attention keys/values, computed once from the encoder output and reused by later
    /// decoder steps. This cache itself holds the decoder self-attention (where a prefix is injected); the companion
    /// travels with it through tuners and is reordered and disposed with it.
    /// </summary>
    public KvCache? CrossAttention { get; private set; }

    public KvCache GetOrCreateCrossAttention() => CrossAttention ??= new KvCache(NumLayers);

    public (Tensor Key, Tensor Value)? Get(int layer) =>
        _keys[layer] is { } k ? (Filled(k, layer), Filled(_values[layer]!, layer)) : null;

    /// <summary>The filled part of a buffer: the buffer itself when it has no spare room, else a view.</summary>
    private Tensor Filled(Tensor buffer, int layer) => buffer.shape[2] == _lengths[layer] ? buffer : buffer.narrow(2, 0, _lengths[layer]);

    /// <summary>Appends new keys/values for a layer and returns the full cached tensors for attention.</summary>
    public (Tensor Key, Tensor Value) Append(int layer, Tensor key, Tensor value)
    {
        var oldK = _keys[layer];
        var oldV = _values[layer];
        long filled = oldK is null ? 0 : _lengths[layer], added = key.shape[2];
        if (oldK is null || torch.is_grad_enabled())
        {
            var k = oldK is null ? key.alias() : torch.cat([Filled(oldK, layer), key], 2);
            var v = oldV is null ? value.alias() : torch.cat([Filled(oldV!, layer), value], 2);
            Replace(layer, k, v, filled + added);
            return (k, v);
        }
        if (oldK.shape[2] < filled + added)
        {
            // Grow by half again (at least 64 positions): amortised O(1) per step, at most ~1.5× the filled size.
            long capacity = filled + added + Room(filled);
            Replace(layer, Grow(Filled(oldK, layer), capacity), Grow(Filled(oldV!, layer), capacity), filled);
        }
        _keys[layer]!.narrow(2, filled, added).copy_(key);
        _values[layer]!.narrow(2, filled, added).copy_(value);
        _lengths[layer] = filled + added;
        return (Filled(_keys[layer]!, layer), Filled(_values[layer]!, layer));
    }

    /// <summary>A copy of <paramref name="filled"/> in a buffer of <paramref name="capacity"/> positions along the sequence axis.</summary>
    internal static Tensor Grow(Tensor filled, long capacity)
    {
        var shape = filled.shape.ToArray();
        shape[2] = capacity;
        var buffer = torch.empty(shape, filled.dtype, filled.device);
        buffer.narrow(2, 0, filled.shape[2]).copy_(filled);
        return buffer;
    }

    /// <summary>Holds <paramref name="k"/>/<paramref name="v"/> (detached from any dispose scope) and frees what they replace.</summary>
    private void Replace(int layer, Tensor k, Tensor v, long filled)
    {
        var oldK = _keys[layer];
        var oldV = _values[layer];
        _keys[layer] = k.DetachFromDisposeScope();
        _values[layer] = v.DetachFromDisposeScope();
        _lengths[layer] = filled;
        oldK?.Dispose();
        oldV?.Dispose();
    }

    /// <summary>
    /// Takes buffers whose first <paramref name="filled"/> positions along the sequence axis are the cache and the rest
    /// spare room (no_grad only), so the next steps write in place instead of regrowing.
    /// </summary>
    public void Adopt(int layer, Tensor keyBuffer, Tensor valueBuffer, long filled) =>
        Replace(layer, keyBuffer.alias(), valueBuffer.alias(), filled);

    /// <summary>Spare positions to allocate past <paramref name="filled"/>: half again, at least 64 (amortised O(1) appends).</summary>
    public static long Room(long filled) => Math.Max(64, filled / 2);

    /// <summary>Sets a layer's cache outright (used to inject prefixes).</summary>
    public void Set(int layer, Tensor key, Tensor value) => Replace(layer, key.alias(), value.alias(), key.shape[2]);

    /// <summary>Reorders the batch dimension (beam search) or selects rows.</summary>
    public void IndexSelect(Tensor batchIndex)
    {
        for (int i = 0; i < _keys.Length; i++)
        {
            if (_keys[i] is null) continue;
            // Spare room travels along: beam search reorders every step and would otherwise regrow every step.
            Replace(i, _keys[i]!.index_select(0, batchIndex), _values[i]!.index_select(0, batchIndex), _lengths[i]);
        }
        CrossAttention?.IndexSelect(batchIndex);
    }

    public void Dispose()
    {
        for (int i = 0; i < _keys.Length; i++)
        {
            _keys[i]?.Dispose();
            _values[i]?.Dispose();
            _keys[i] = _values[i] = null;
        }
        CrossAttention?.Dispose();
        CrossAttention = null;
    }
}
