using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models;

/// <summary>
/// Per-layer key/value cache, tensors laid out [batch, kv_heads, seq, head_dim]. Tensors held here are detached from
/// dispose scopes so they outlive a forward pass; the cache disposes what it replaces. Prefix tuning seeds it with
/// the virtual-token keys/values before the first forward, which is how Hugging Face feeds prefixes
/// (<c>past_key_values</c>).
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor?[] _keys;
    private readonly Tensor?[] _values;

    public KvCache(int numLayers)
    {
        _keys = new Tensor?[numLayers];
        _values = new Tensor?[numLayers];
    }

    public int NumLayers => _keys.Length;

    /// <summary>Number of cached positions (0 when empty).</summary>
    public long Length => _keys[0] is { } k ? k.shape[2] : 0;

    public bool IsEmpty => _keys[0] is null;

    /// <summary>
    /// Encoder-decoder models: cross-attention keys/values, computed once from the encoder output and reused by later
    /// decoder steps. This cache itself holds the decoder self-attention (where a prefix is injected); the companion
    /// travels with it through tuners and is reordered and disposed with it.
    /// </summary>
    public KvCache? CrossAttention { get; private set; }

    public KvCache GetOrCreateCrossAttention() => CrossAttention ??= new KvCache(NumLayers);

    public (Tensor Key, Tensor Value)? Get(int layer) =>
        _keys[layer] is { } k ? (k, _values[layer]!) : null;

    /// <summary>Appends new keys/values for a layer and returns the full cached tensors for attention.</summary>
    public (Tensor Key, Tensor Value) Append(int layer, Tensor key, Tensor value)
    {
        var oldK = _keys[layer];
        var oldV = _values[layer];
        var k = oldK is null ? key.alias() : torch.cat([oldK, key], 2);
        var v = oldV is null ? value.alias() : torch.cat([oldV, value], 2);
        k.DetachFromDisposeScope();
        v.DetachFromDisposeScope();
        _keys[layer] = k;
        _values[layer] = v;
        oldK?.Dispose();
        oldV?.Dispose();
        return (k, v);
    }

    /// <summary>Sets a layer's cache outright (used to inject prefixes).</summary>
    public void Set(int layer, Tensor key, Tensor value)
    {
        _keys[layer]?.Dispose();
        _values[layer]?.Dispose();
        _keys[layer] = key.alias().DetachFromDisposeScope();
        _values[layer] = value.alias().DetachFromDisposeScope();
    }

    /// <summary>Reorders the batch dimension (beam search) or selects rows.</summary>
    public void IndexSelect(Tensor batchIndex)
    {
        for (int i = 0; i < _keys.Length; i++)
        {
            if (_keys[i] is null) continue;
            var k = _keys[i]!.index_select(0, batchIndex).DetachFromDisposeScope();
            var v = _values[i]!.index_select(0, batchIndex).DetachFromDisposeScope();
            _keys[i]!.Dispose();
            _values[i]!.Dispose();
            _keys[i] = k;
            _values[i] = v;
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
