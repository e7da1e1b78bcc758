using System.Collections.ObjectModel;
using System.Text.Json;
using static TorchSharp.torch;

namespace Peft.Training.IO;

/// <summary>
/// A Hugging Face model folder's weights: <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c> (<c>{"metadata":{...},"weight_map":{key: shard file}}</c>).
/// All shards are opened (and their headers validated) up front, and every indexed key is checked to exist in its
/// shard, so a broken checkpoint fails at open time rather than half-way through loading a model.
/// </summary>
public sealed class CheckpointReader : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, SafetensorsFile> _fileByKey;
    private readonly List<string> _keys;

    private CheckpointReader(string source, List<SafetensorsFile> files, List<string> keys,
        Dictionary<string, SafetensorsFile> fileByKey, IReadOnlyDictionary<string, string> metadata)
    {
        Source = source;
        _files = files;
        _keys = keys;
        _fileByKey = fileByKey;
        Metadata = metadata;
    }

    /// <summary>The .safetensors file or the index .json this reader was opened from.</summary>
    public string Source { get; }

    /// <summary>The files behind this checkpoint (one, or each distinct shard).</summary>
    public IReadOnlyList<string> Files => _files.Select(f => f.Path).ToList();

    /// <summary>
    /// The single file's <c>__metadata__</c>, or the index's <c>metadata</c> (non-string values such as
    /// <c>total_size</c> as their raw JSON text).
    /// </summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Tensor keys: header order for a single file, <c>weight_map</c> order for an index.</summary>
    public IReadOnlyCollection<string> Keys => _keys;

    /// <summary>
    /// Opens <c>model.safetensors</c> in <paramref name="modelDir"/>, else its sharded index (the same preference
    /// as transformers).
    /// </summary>
    public static CheckpointReader OpenFolder(string modelDir)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelDir);
        var dir = Path.GetFullPath(modelDir);
        if (!Directory.Exists(dir))
            throw new PeftUserException($"Model folder '{dir}' does not exist.", UserErrorKind.NotFound);
        var single = Path.Combine(dir, SingleFileName);
        if (File.Exists(single))
            return OpenFile(single);
        var index = Path.Combine(dir, IndexFileName);
        if (File.Exists(index))
            return OpenIndex(index);
        throw new PeftUserException(
            $"Model folder '{dir}' has neither {SingleFileName} nor {IndexFileName}.", UserErrorKind.NotFound);
    }

    public static CheckpointReader OpenFile(string safetensorsPath)
    {
        var file = SafetensorsFile.Open(safetensorsPath);
        var keys = file.Entries.Select(e => e.Name).ToList();
        var byKey = keys.ToDictionary(k => k, _ => file, StringComparer.Ordinal);
        return new CheckpointReader(file.Path, [file], keys, byKey, file.Metadata);
    }

    private static CheckpointReader OpenIndex(string indexPath)
    {
        var (metadata, weightMap) = ReadIndex(indexPath);
        var dir = Path.GetDirectoryName(indexPath)!;
        var shards = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var files = new List<SafetensorsFile>();
        try
        {
            var byKey = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (var (key, shardName) in weightMap)
            {
                if (!shards.TryGetValue(shardName, out var shard))
                {
                    var shardPath = ResolveShard(indexPath, dir, shardName);
                    if (!File.Exists(shardPath))
                        throw new PeftUserException(
                            $"Shard '{shardName}' listed in '{indexPath}' (for '{key}') does not exist.", UserErrorKind.NotFound);
                    shard = SafetensorsFile.Open(shardPath);
                    shards.Add(shardName, shard);
                    files.Add(shard);
                }
                if (!shard.Contains(key))
                    throw new SafetensorsFormatException(indexPath,
                        $"weight_map maps '{key}' to shard '{shardName}', which has no such tensor");
                byKey.Add(key, shard);
            }
            return new CheckpointReader(indexPath, files, weightMap.Select(p => p.Key).ToList(), byKey, metadata);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    private static (IReadOnlyDictionary<string, string>, List<KeyValuePair<string, string>>) ReadIndex(string indexPath)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
        }
        catch (JsonException ex)
        {
            throw new SafetensorsFormatException(indexPath, $"index is not valid JSON ({ex.Message})", ex);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new SafetensorsFormatException(indexPath, "index is not a JSON object");
            var metadata = new OrderedDictionary<string, string>(StringComparer.Ordinal);
            if (root.TryGetProperty("metadata", out var meta) && meta.ValueKind == JsonValueKind.Object)
            {
                foreach (var p in meta.EnumerateObject())
                    metadata[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.GetRawText();
            }
            if (!root.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new SafetensorsFormatException(indexPath, "index has no 'weight_map' object");
            var weightMap = new List<KeyValuePair<string, string>>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in map.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(p.Value.GetString()))
                    throw new SafetensorsFormatException(indexPath, $"weight_map entry '{p.Name}' is not a shard file name");
                if (!seen.Add(p.Name))
                    throw new SafetensorsFormatException(indexPath, $"weight_map lists '{p.Name}' twice");
                weightMap.Add(new(p.Name, p.Value.GetString()!));
            }
            return (new ReadOnlyDictionary<string, string>(metadata), weightMap);
        }
    }

    /// <summary>Shards are names relative to the index's folder; refuse anything that escapes it.</summary>
    private static string ResolveShard(string indexPath, string dir, string shardName)
    {
        var full = Path.GetFullPath(Path.Combine(dir, shardName));
        var relative = Path.GetRelativePath(dir, full);
        if (relative == ".." || relative.StartsWith(".." + Path.DirectorySeparatorChar, StringComparison.Ordinal)
            || Path.IsPathRooted(relative))
            throw new SafetensorsFormatException(indexPath, $"shard '{shardName}' is outside the model folder");
        return full;
    }

    public bool Contains(string key) => _fileByKey.ContainsKey(key);

    public SafetensorsEntry Entry(string key) => FileFor(key)[key];

    public Tensor Load(string key, Device? device = null, ScalarType? dtype = null) => FileFor(key).Load(key, device, dtype);

    /// <inheritdoc cref="SafetensorsFile.LoadMapped"/>
    public Tensor LoadMapped(string key) => FileFor(key).LoadMapped(key);

    private SafetensorsFile FileFor(string key) =>
        _fileByKey.TryGetValue(key, out var file)
            ? file
            : throw new KeyNotFoundException($"Tensor '{key}' not found in checkpoint '{Source}'.");

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}
