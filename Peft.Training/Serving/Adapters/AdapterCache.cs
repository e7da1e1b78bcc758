using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.Configs;
using Peft.Training.IO;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Serving.Adapters;

public sealed class AdapterCacheOptions
{
    /// <summary>Bytes of adapter weights attached to the model (the device tier) before idle ones are detached.</summary>
    public long DeviceBudgetBytes { get; set; } = 256L << 20;
    /// <summary>Bytes of adapter weights kept in host memory (ready to attach without reading the disk).</summary>
    public long HostBudgetBytes { get; set; } = 1L << 30;
    /// <summary>The served base model's name: an adapter whose base_model_name_or_path ends in another name is refused (409).</summary>
    public string? BaseModelName { get; set; }
}

/// <summary>
/// Adapter LRU in three tiers: attached to the model (device), tensors in host memory, folder on disk. Disk reads
/// happen on the thread pool, never on the engine loop, which only copies host tensors in (or builds a merge). An
/// entry leased by a request or pinned is never evicted. Keys are name@version, so a new version is a new entry:
/// new requests get it while running sequences keep the version they leased.
/// </summary>
public sealed class AdapterCache(IAdapterSource source, AdapterCacheOptions options, ServingMetrics? metrics = null) : IDisposable
{
    private readonly object _gate = new();
    private readonly Dictionary<string, AdapterEntry> _entries = new(StringComparer.Ordinal);
    private int _nextId;
    private long _hits, _misses, _evictions;

    public IAdapterSource Source { get; } = source;
    public AdapterCacheOptions Options { get; } = options;
    public long Hits => Interlocked.Read(ref _hits);
    public long Misses => Interlocked.Read(ref _misses);
    public long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>Resolves and leases an adapter, reading it from disk (off the engine loop) when it is not in memory.</summary>
    public async Task<AdapterLease> AcquireAsync(string reference, CancellationToken ct)
    {
        var location = await Source.ResolveAsync(AdapterReference.Parse(reference), ct).ConfigureAwait(false);
        CheckBase(location.BaseModel, location.Key);
        AdapterLease lease;
        Task loading;
        lock (_gate)
        {
            if (!_entries.TryGetValue(location.Key, out var e))
                _entries[location.Key] = e = new AdapterEntry(location.Key, NextModelName(), location, null);
            lease = Lease(e);
            if (e.Attached) Hit("device", e.Key);
            else if (e.HostTensors is not null) Hit("host", e.Key);
            else
            {
                if (e.Loading is null) { Interlocked.Increment(ref _misses); metrics?.CacheMiss(e.Key); }
                else Hit("loading", e.Key);
                e.Loading ??= Task.Run(() => LoadHost(e));
            }
            loading = e.Attached || e.HostTensors is not null ? Task.CompletedTask : e.Loading!;
        }
        try
        {
            await loading.WaitAsync(ct).ConfigureAwait(false);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
        return lease;
    }

    /// <summary>Leases the merge of several adapters; the same ids (by version), weights, strategy and density share one entry.</summary>
    public async Task<AdapterLease> AcquireMergedAsync(MergeSpec spec, CancellationToken ct)
    {
        if (spec.Ids.Count == 0 || spec.Ids.Count > 16) throw Bad("merged_adapters.ids", "must name 1 to 16 adapters");
        if (spec.Weights.Count != spec.Ids.Count) throw Bad("merged_adapters.weights", $"has {spec.Weights.Count} entries for {spec.Ids.Count} ids");
        if (!MergeSpec.Strategies.Contains(spec.Strategy)) throw Bad("merged_adapters.merge_strategy", $"'{spec.Strategy}' is not one of linear, ties, dare_linear, dare_ties");
        if (spec.Strategy != "linear" && spec.Density is null) throw Bad("merged_adapters.density", $"is required for '{spec.Strategy}'");
        if (spec.Density is { } d && !(d > 0 && d <= 1)) throw Bad("merged_adapters.density", $"must be in (0, 1], got {d}");
        var components = new List<AdapterLease>();
        try
        {
            foreach (var id in spec.Ids) components.Add(await AcquireAsync(id, ct).ConfigureAwait(false));
            string key = "merge:" + ContentHash(spec, components);
            lock (_gate)
            {
                if (_entries.TryGetValue(key, out var existing))
                {
                    Hit(existing.Attached ? "device" : "host", key);
                    foreach (var c in components) c.Dispose();
                    return Lease(existing);
                }
                var e = new AdapterEntry(key, NextModelName(), null, null) { Merge = spec, MergeComponents = components };
                _entries[key] = e;
                Interlocked.Increment(ref _misses);
                metrics?.CacheMiss(key);
                return Lease(e);
            }
        }
        catch
        {
            foreach (var c in components) c.Dispose();
            throw;
        }
    }

    private static string ContentHash(MergeSpec spec, List<AdapterLease> components)
    {
        var text = new StringBuilder(spec.Strategy).Append('|').Append(spec.Density?.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
        for (int i = 0; i < components.Count; i++)
            text.Append('|').Append(components[i].Entry.Key).Append('=').Append(spec.Weights[i].ToString("R", System.Globalization.CultureInfo.InvariantCulture));
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16];
    }

    private AdapterLease Lease(AdapterEntry e)
    {
        e.RefCount++;
        e.Requests++;
        e.LastUsed = DateTimeOffset.UtcNow;
        return new AdapterLease(this, e);
    }

    private void Hit(string tier, string adapter)
    {
        Interlocked.Increment(ref _hits);
        metrics?.CacheHit(adapter, tier);
    }

    private string NextModelName() => $"adapter_{++_nextId}";

    internal void Release(AdapterEntry e)
    {
        lock (_gate)
        {
            e.RefCount--;
            e.LastUsed = DateTimeOffset.UtcNow;
            TrimHost();
        }
    }

    /// <summary>Reads config and weights into host memory (thread pool). Failures drop the entry so a retry re-reads.</summary>
    private void LoadHost(AdapterEntry e)
    {
        try
        {
            var folder = e.Location!.Folder;
            var config = PeftConfigs.Load(folder);
            Check(config, folder);
            var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            long bytes = 0;
            string file = Path.Combine(folder, PeftModel.WeightsFileName);
            if (!File.Exists(file)) throw new PeftUserException($"{file}: adapter weights not found", UserErrorKind.Invalid);
            using (var st = SafetensorsFile.Open(file))
                foreach (var entry in st.Entries)
                {
                    var t = st.Load(entry.Name, CPU, ScalarType.Float32).DetachFromDisposeScope();
                    tensors[entry.Name] = t;
                    bytes += t.NumberOfElements * 4;
                }
            lock (_gate)
            {
                e.Config = config;
                e.HostTensors = tensors;
                e.Bytes = bytes;
                e.Rank = RankOf(config);
                e.Loading = null;
                TrimHost();
            }
        }
        catch
        {
            lock (_gate)
            {
                e.Loading = null;
                if (_entries.TryGetValue(e.Key, out var same) && ReferenceEquals(same, e) && !e.Attached) _entries.Remove(e.Key);
            }
            throw;
        }
    }

    private static int RankOf(PeftConfig c) => c is LoraConfig l ? (int)Math.Max(l.R, l.RankPattern.Values.DefaultIfEmpty(0).Max()) : 0;

    /// <summary>
    /// LoRA (DoRA included) and IA³ rows share the batch's layers; prompt, P- and prefix tuning for causal LMs enter
    /// through their sequence's prefill (<see cref="VirtualTokens"/>). Other methods are refused up front (422).
    /// </summary>
    private void Check(PeftConfig config, string folder)
    {
        bool served = config is LoraConfig or Ia3Config
            || config is PromptLearningConfig { TaskType: Core.Models.TaskType.CausalLM, NumTransformerSubmodules: null or 1 };
        if (!served)
            throw new PeftUserException(
                $"{folder}: {config.PeftType} adapters{(config is PromptLearningConfig ? $" for {config.TaskType?.ToPeftString() ?? "no task_type"}" : "")} are not served " +
                "(the server serves LoRA, DoRA, IA3, and prompt / P- / prefix tuning for CAUSAL_LM)", UserErrorKind.Invalid);
        if (config.BaseModelNameOrPath is { Length: > 0 } declared) CheckBase(declared, folder);
    }

    /// <summary>An adapter declared for another base than the one served is a conflict (409), before any weights are read.</summary>
    private void CheckBase(string? declared, string what)
    {
        if (Options.BaseModelName is not { Length: > 0 } served || declared is not { Length: > 0 }) return;
        string name = Path.GetFileName(declared.TrimEnd('/', '\\'));
        if (!string.Equals(name, served, StringComparison.OrdinalIgnoreCase))
            throw new PeftUserException($"{what}: adapter was trained on '{declared}', but this engine serves '{served}'", UserErrorKind.Conflict);
    }

    /// <summary>Engine loop only: makes the adapter usable in a forward pass, then detaches idle ones over budget.</summary>
    internal void Attach(AdapterEntry e, PeftModel peft)
    {
        if (e.Attached) return;
        if (e.HostTensors is null && e.Merge is not null) BuildMerge(e, peft);
        else
        {
            Dictionary<string, Tensor> tensors;
            PeftConfig config;
            lock (_gate)
            {
                tensors = e.HostTensors ?? throw new InvalidOperationException($"adapter {e.Key} is leased but not in memory");
                config = Copy(e.Config!, e.Key);
            }
            try
            {
                if (config is PromptLearningConfig prompt)
                    e.Virtual = VirtualTokens.Attach(peft.BaseModel, prompt, tensors, e.Location?.Folder ?? e.Key);
                else
                {
                    // The weights are overwritten; a data-dependent init (pissa, olora) would also rewrite the base weights.
                    if (config is LoraConfig lc) lc.InitLoraWeights = JsonValue.Create(false);
                    peft.AddAdapterFromTensors(e.ModelName, config, tensors, e.Location?.Folder ?? e.Key);
                }
            }
            catch (Exception ex) when (ex is AdapterLoadException or PeftConfigException)
            {
                throw new PeftUserException($"adapter {e.Key} does not fit this base model: {ex.Message}", UserErrorKind.Conflict, ex);
            }
        }
        lock (_gate) e.Attached = true;
        TrimDevice(peft);
    }

    private void BuildMerge(AdapterEntry e, PeftModel peft)
    {
        var spec = e.Merge!;
        var parts = e.MergeComponents ?? throw new InvalidOperationException($"merge {e.Key} lost its components");
        if (parts.FirstOrDefault(p => p.Entry.Config is not LoraConfig) is { } other)
            throw new PeftUserException($"merged_adapters: {other.Entry.Key} is a {other.Entry.Config?.PeftType} adapter; only LoRA adapters are merged per request", UserErrorKind.Invalid);
        foreach (var p in parts) Attach(p.Entry, peft);
        try
        {
            peft.AddWeightedAdapter(parts.Select(p => p.Entry.ModelName).ToList(), spec.Weights, e.ModelName, spec.Strategy, density: spec.Density);
        }
        catch (Exception ex) when (ex is ArgumentException or PeftUserException)
        {
            // The engine reports a bad combination as a user error; name the request field it came from.
            throw new PeftUserException($"merged_adapters: {ex.Message}", UserErrorKind.Invalid, ex);
        }
        // Keep the result in host memory so a re-attach gives the same weights (dare_* draws random masks).
        var host = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        long bytes = 0;
        foreach (var t in peft.AdapterTensors(e.ModelName))
        {
            var copy = t.Parameter.detach().to(ScalarType.Float32).cpu().clone().DetachFromDisposeScope();
            host[t.CheckpointKey] = copy;
            bytes += copy.NumberOfElements * 4;
        }
        lock (_gate)
        {
            e.Config = Copy(peft.Configs[e.ModelName], e.Key);
            e.HostTensors = host;
            e.Bytes = bytes;
            e.Rank = RankOf(e.Config);
            e.MergeComponents = null;
        }
        foreach (var p in parts) p.Dispose();
    }

    /// <summary>Engine loop only: detaches idle, unpinned adapters, least recently used first, until within budget.</summary>
    internal void TrimDevice(PeftModel peft, bool all = false)
    {
        while (true)
        {
            AdapterEntry? victim;
            lock (_gate)
            {
                long used = _entries.Values.Where(x => x.Attached).Sum(x => x.Bytes);
                if (!all && used <= Options.DeviceBudgetBytes) return;
                victim = _entries.Values.Where(x => x.Attached && x.RefCount == 0 && !x.Pinned).MinBy(x => x.LastUsed);
                if (victim is null) return;
                victim.Attached = false;
                if (victim.HostTensors is null) _entries.Remove(victim.Key);
            }
            Detach(victim, peft);
            Interlocked.Increment(ref _evictions);
            metrics?.Eviction(victim.Key, "device");
        }
    }

    private static void Detach(AdapterEntry e, PeftModel peft)
    {
        if (e.Virtual is { } v)
        {
            e.Virtual = null;
            v.Dispose();
        }
        else peft.DeleteAdapter(e.ModelName);
    }

    /// <summary>Under the lock: drops host copies of idle adapters past the host budget (they stay on disk).</summary>
    private void TrimHost()
    {
        while (_entries.Values.Where(x => x.HostTensors is not null).Sum(x => x.Bytes) > Options.HostBudgetBytes)
        {
            var victim = _entries.Values.Where(x => x.HostTensors is not null && x.RefCount == 0 && !x.Pinned && x.Merge is null)
                .MinBy(x => x.LastUsed);
            if (victim is null) return;
            foreach (var t in victim.HostTensors!.Values) t.Dispose();
            victim.HostTensors = null;
            if (!victim.Attached) _entries.Remove(victim.Key);
            Interlocked.Increment(ref _evictions);
            metrics?.Eviction(victim.Key, "host");
        }
    }

    /// <summary>Pins (or unpins) every known version of a reference's resolution; pinned adapters are never evicted.</summary>
    public async Task<bool> PinAsync(string reference, bool pinned, CancellationToken ct)
    {
        var location = await Source.ResolveAsync(AdapterReference.Parse(reference), ct).ConfigureAwait(false);
        lock (_gate)
        {
            if (!_entries.TryGetValue(location.Key, out var e)) return false;
            e.Pinned = pinned;
            return true;
        }
    }

    /// <summary>Engine loop only: detaches and forgets an idle adapter version (false when it is in use).</summary>
    internal bool Unload(string key, PeftModel peft)
    {
        AdapterEntry? e;
        lock (_gate)
        {
            if (!_entries.TryGetValue(key, out e) || e.RefCount > 0) return false;
            _entries.Remove(key);
        }
        if (e.Attached) Detach(e, peft);
        e.Attached = false;
        if (e.HostTensors is not null) foreach (var t in e.HostTensors.Values) t.Dispose();
        e.HostTensors = null;
        return true;
    }

    public IReadOnlyList<AdapterInfo> Snapshot()
    {
        lock (_gate)
            return _entries.Values.OrderBy(e => e.Key, StringComparer.Ordinal)
                .Select(e => new AdapterInfo(e.Key, e.Tier.ToString().ToLowerInvariant(), e.Bytes, e.Rank, e.Pinned, e.RefCount,
                    e.LastUsed, e.Requests, e.Tokens))
                .ToList();
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var e in _entries.Values)
            {
                if (e.HostTensors is not null) foreach (var t in e.HostTensors.Values) t.Dispose();
                e.Virtual?.Dispose();
            }
            _entries.Clear();
        }
    }

    /// <summary>A fresh config (AddAdapter mutates the one it gets). Through text: in-memory ToJson nodes do not re-read as numbers.</summary>
    private static PeftConfig Copy(PeftConfig c, string source) =>
        PeftConfigs.Parse((JsonObject)JsonNode.Parse(c.ToJson().ToJsonString())!, source);

    private static PeftUserException Bad(string field, string what) => new($"'{field}' {what}", UserErrorKind.Invalid);
}
