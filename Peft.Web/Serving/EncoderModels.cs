using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Peft.Core;
using Peft.Training.Models;
using Peft.Training.Serving;
using Peft.Training.Serving.Adapters;
using Peft.Training.Tokenization;

namespace Peft.Web.Serving;

/// <summary>One served encoder base: its engine (which owns the model), adapter cache and tokenizer (null when the folder has none).</summary>
public sealed class EncoderHost(string name, EncoderEngine engine, AdapterCache cache, ITextTokenizer? tokenizer) : IDisposable
{
    private readonly Lock _tokenizerGate = new();

    public string Name { get; } = name;
    public EncoderEngine Engine { get; } = engine;
    public AdapterCache Cache { get; } = cache;

    public IReadOnlyList<int> Encode(string text)
    {
        if (tokenizer is null)
            throw new PeftUserException($"base model '{Name}' has no tokenizer.json; send 'input' as token ids", UserErrorKind.Invalid);
        lock (_tokenizerGate) return tokenizer.Encode(text);
    }

    public void Dispose()
    {
        Engine.Dispose();
        Cache.Dispose();
        tokenizer?.Dispose();
    }
}

/// <summary>
/// The encoder bases of <see cref="ServingOptions.Encoders"/>, one <see cref="EncoderHost"/> each (singleton), and the
/// routing of a request's <c>model</c> to one of them: a base's name, or an adapter reference whose base (from the
/// catalog, else its adapter_config.json) is one of them. An adapter for a base served here for generation, or not at
/// all, is a 409.
/// </summary>
public sealed class EncoderModels : IDisposable
{
    private readonly Dictionary<string, EncoderHost> _hosts = new(StringComparer.OrdinalIgnoreCase);
    private readonly IAdapterSource _source;

    public EncoderModels(IOptions<ServingOptions> options, IHostEnvironment env, ServingMetrics metrics, IAdapterSource source)
    {
        _source = source;
        var o = options.Value;
        try
        {
            foreach (var m in o.Encoders)
            {
                string dir = InferenceService.Locate(m.Path, env.ContentRootPath)
                    ?? throw new PeftUserException($"Serving:Encoders: folder '{m.Path}' not found from {env.ContentRootPath}", UserErrorKind.NotFound);
                string name = m.Name ?? Path.GetFileName(dir.TrimEnd('/'));
                if (_hosts.ContainsKey(name)) throw new PeftUserException($"Serving:Encoders: '{name}' is listed twice", UserErrorKind.Invalid);
                var cache = new AdapterCache(source, new AdapterCacheOptions
                {
                    BaseModelName = name,
                    DeviceBudgetBytes = o.DeviceBudgetMb << 20,
                    HostBudgetBytes = o.HostBudgetMb << 20,
                }, metrics);
                ITextTokenizer? tokenizer = File.Exists(Path.Combine(dir, "tokenizer.json")) || File.Exists(Path.Combine(dir, "vocab.txt"))
                    ? AutoTokenizer.FromFolder(dir) : null;
                _hosts[name] = new EncoderHost(name, new EncoderEngine(AutoModel.FromPretrained(dir), cache, metrics), cache, tokenizer);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public IReadOnlyCollection<EncoderHost> Hosts => _hosts.Values;

    /// <summary>The encoder a request's <c>model</c> names, and the adapter leased on it (dispose the lease when done).</summary>
    public async Task<(EncoderHost Host, AdapterLease? Adapter)> ResolveAsync(string? model, CancellationToken ct)
    {
        if (_hosts.Count == 0)
            throw new PeftUserException("this server serves no encoder model (set Serving:Encoders)", UserErrorKind.NotFound);
        if (string.IsNullOrEmpty(model))
            return _hosts.Count == 1 ? (_hosts.Values.First(), null)
                : throw new PeftUserException($"'model' is required: one of {string.Join(", ", _hosts.Keys)} or an adapter", UserErrorKind.BadRequest);
        if (_hosts.TryGetValue(model, out var direct)) return (direct, null);
        var location = await _source.ResolveAsync(AdapterReference.Parse(model), ct);
        string? declared = location.BaseModel ?? DeclaredBase(location.Folder);
        string? baseName = declared is null ? null : Path.GetFileName(declared.TrimEnd('/', '\\'));
        EncoderHost host;
        if (baseName is not null && _hosts.TryGetValue(baseName, out var byBase)) host = byBase;
        else if (baseName is null && _hosts.Count == 1) host = _hosts.Values.First();
        else throw new PeftUserException($"adapter '{model}' is for base '{declared}', which is not an encoder model served here ({string.Join(", ", _hosts.Keys)})", UserErrorKind.Conflict);
        return (host, await host.Cache.AcquireAsync(model, ct));
    }

    private static string? DeclaredBase(string folder)
    {
        string file = Path.Combine(folder, "adapter_config.json");
        if (!File.Exists(file)) return null;
        try { return JsonNode.Parse(File.ReadAllText(file))?["base_model_name_or_path"]?.GetValue<string>(); }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException) { return null; }
    }

    public void Dispose()
    {
        foreach (var h in _hosts.Values) h.Dispose();
        _hosts.Clear();
    }
}
