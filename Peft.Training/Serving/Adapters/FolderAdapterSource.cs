using System.Text.Json;
using Peft.Core;

namespace Peft.Training.Serving.Adapters;

/// <summary>
/// Adapters under one directory: <c>root/NAME/adapter_config.json</c> (one unversioned adapter, version "0"), or
/// <c>root/NAME/N/</c> numbered versions where a bare NAME means the highest N and <c>root/NAME/aliases.json</c>
/// (<c>{"production": 3}</c>) maps aliases to versions. Read on every resolution, so adding a version folder or
/// rewriting aliases.json (atomically) hot-swaps the adapter for new requests.
/// </summary>
public sealed class FolderAdapterSource(string root) : IAdapterSource
{
    public const string AliasesFileName = "aliases.json";

    public string Root { get; } = Path.GetFullPath(root);

    public ValueTask<AdapterLocation> ResolveAsync(AdapterReference reference, CancellationToken ct) =>
        ValueTask.FromResult(Resolve(reference));

    public ValueTask<IReadOnlyList<AdapterLocation>> ListAsync(CancellationToken ct)
    {
        var list = new List<AdapterLocation>();
        if (Directory.Exists(Root))
            foreach (var dir in Directory.EnumerateDirectories(Root).Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(dir);
                if (TryLatest(name, dir) is { } loc) list.Add(loc);
            }
        return ValueTask.FromResult<IReadOnlyList<AdapterLocation>>(list);
    }

    private AdapterLocation Resolve(AdapterReference r)
    {
        string dir = Path.Combine(Root, r.Name);
        if (!Directory.Exists(dir)) throw NotFound($"adapter '{r.Name}' not found under {Root}");
        if (r.Selector is null) return TryLatest(r.Name, dir) ?? throw NotFound($"adapter '{r.Name}' has no adapter_config.json nor version folders");
        string version = r.IsVersion ? r.Selector : AliasTarget(dir, r) ?? throw NotFound($"adapter '{r.Name}' has no alias '{r.Selector}'");
        if (version == "0" && IsAdapterFolder(dir)) return new AdapterLocation(r.Name, "0", dir);
        string vdir = Path.Combine(dir, version);
        if (!IsAdapterFolder(vdir)) throw NotFound($"adapter '{r.Name}' has no version {version}");
        return new AdapterLocation(r.Name, version, vdir);
    }

    private static AdapterLocation? TryLatest(string name, string dir)
    {
        if (IsAdapterFolder(dir)) return new AdapterLocation(name, "0", dir);
        var latest = Directory.EnumerateDirectories(dir)
            .Select(d => (Dir: d, N: long.TryParse(Path.GetFileName(d), out var n) && n > 0 ? n : -1))
            .Where(x => x.N > 0 && IsAdapterFolder(x.Dir))
            .OrderByDescending(x => x.N).FirstOrDefault();
        return latest.Dir is null ? null : new AdapterLocation(name, latest.N.ToString(System.Globalization.CultureInfo.InvariantCulture), latest.Dir);
    }

    private static string? AliasTarget(string dir, AdapterReference r)
    {
        string file = Path.Combine(dir, AliasesFileName);
        if (!File.Exists(file)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(file));
            if (!doc.RootElement.TryGetProperty(r.Selector!, out var v)) return null;
            return v.ValueKind == JsonValueKind.Number ? v.GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture) : v.GetString();
        }
        catch (JsonException e)
        {
            throw new PeftUserException($"{file}: not valid JSON ({e.Message})", UserErrorKind.Invalid);
        }
    }

    private static bool IsAdapterFolder(string dir) => File.Exists(Path.Combine(dir, "adapter_config.json"));

    private static PeftUserException NotFound(string message) => new(message, UserErrorKind.NotFound);
}
