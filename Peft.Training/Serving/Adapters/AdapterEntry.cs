using Peft.Core.Configs;
using static TorchSharp.torch;

namespace Peft.Training.Serving.Adapters;

/// <summary>Where an adapter's weights are now: attached to the model, held in host memory, or only on disk.</summary>
public enum AdapterTier { Disk, Host, Device }

/// <summary>
/// One adapter version known to the cache. Host tensors and the loading task are guarded by the cache's lock; the
/// attached state is only touched on the engine's loop thread.
/// </summary>
public sealed class AdapterEntry
{
    internal AdapterEntry(string key, string modelName, AdapterLocation? location, PeftConfig? config)
    {
        Key = key;
        ModelName = modelName;
        Location = location;
        Config = config;
    }

    /// <summary>name@version, or merge:HASH for a per-request composition.</summary>
    public string Key { get; }
    /// <summary>The name the adapter has inside the PeftModel (no '.' allowed there).</summary>
    public string ModelName { get; }
    public AdapterLocation? Location { get; }
    public PeftConfig? Config { get; internal set; }

    internal Dictionary<string, Tensor>? HostTensors { get; set; }
    internal Task? Loading { get; set; }
    internal bool Attached { get; set; }
    /// <summary>Prompt, P- and prefix tuning: the attached virtual tokens (these are not layers of the model).</summary>
    internal VirtualTokens? Virtual { get; set; }
    /// <summary>The name this adapter's rows carry in a mixed-batch forward: virtual-token methods decode as base rows.</summary>
    internal string RowName => Config is PromptLearningConfig ? Tuners.Lora.LoraLayer.BaseRowName : ModelName;
    /// <summary>Merged adapters: what to build from (component entries stay leased until built).</summary>
    internal MergeSpec? Merge { get; init; }
    internal IReadOnlyList<AdapterLease>? MergeComponents { get; set; }

    public long Bytes { get; internal set; }
    public int Rank { get; internal set; }
    public bool Pinned { get; internal set; }
    internal int RefCount;
    public int ActiveSequences => Volatile.Read(ref RefCount);
    public DateTimeOffset LastUsed { get; internal set; } = DateTimeOffset.UtcNow;
    internal long Requests, Tokens;
    public long RequestCount => Interlocked.Read(ref Requests);
    public long TokenCount => Interlocked.Read(ref Tokens);

    public AdapterTier Tier => Attached ? AdapterTier.Device : HostTensors is not null ? AdapterTier.Host : AdapterTier.Disk;

    internal void AddTokens(int n) => Interlocked.Add(ref Tokens, n);
}

/// <summary>What a running sequence holds: the adapter cannot be evicted until the lease is disposed.</summary>
public sealed class AdapterLease : IDisposable
{
    private AdapterCache? _cache;

    internal AdapterLease(AdapterCache cache, AdapterEntry entry)
    {
        _cache = cache;
        Entry = entry;
    }

    public AdapterEntry Entry { get; }

    public void Dispose()
    {
        var c = Interlocked.Exchange(ref _cache, null);
        c?.Release(Entry);
    }
}

/// <summary>LoRAX <c>merged_adapters</c>: combine adapters for one request (built once per content hash).</summary>
public sealed record MergeSpec(IReadOnlyList<string> Ids, IReadOnlyList<double> Weights, string Strategy, double? Density)
{
    public static readonly IReadOnlySet<string> Strategies = new HashSet<string> { "linear", "ties", "dare_linear", "dare_ties" };
}

/// <summary>A row of the list of adapters the server knows (GET /v1/adapters).</summary>
public sealed record AdapterInfo(string Key, string Tier, long Bytes, int Rank, bool Pinned, int ActiveSequences,
    DateTimeOffset LastUsed, long Requests, long Tokens);
