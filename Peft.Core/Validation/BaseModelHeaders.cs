using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Core.IO;
using Peft.Core.Models;

namespace Peft.Core.Validation;

/// <summary>
/// What an adapter is checked against: a base model's config.json and the names/shapes of its weights, read from
/// the safetensors headers only (a multi-GB base is inspected in milliseconds, no weights loaded).
/// </summary>
public sealed class BaseModelHeaders
{
    public BaseModelHeaders(ModelConfig config, IReadOnlyList<SafetensorsEntry> weights, IReadOnlyList<string> weightFiles)
    {
        Config = config;
        Weights = weights;
        WeightFiles = weightFiles;
    }

    public ModelConfig Config { get; }
    public IReadOnlyList<SafetensorsEntry> Weights { get; }
    /// <summary>The safetensors files read (one, or the shards named by model.safetensors.index.json).</summary>
    public IReadOnlyList<string> WeightFiles { get; }

    public long ParameterCount => Weights.Sum(w => w.ElementCount);

    /// <summary>The dtype holding most parameters.</summary>
    public string DominantDType => Weights.GroupBy(w => w.DType).OrderByDescending(g => g.Sum(w => w.ElementCount))
        .Select(g => g.Key).FirstOrDefault() ?? "F32";

    public static BaseModelHeaders Load(string folder)
    {
        if (!Directory.Exists(folder)) throw new PeftUserException($"{folder}: model folder not found", UserErrorKind.NotFound);
        var config = ModelConfig.FromFolder(folder);
        var files = WeightFilesOf(folder);
        var weights = new List<SafetensorsEntry>();
        foreach (var f in files) weights.AddRange(SafetensorsHeaderReader.Read(f).Entries);
        return new BaseModelHeaders(config, weights, files);
    }

    private static List<string> WeightFilesOf(string folder)
    {
        var single = Path.Combine(folder, "model.safetensors");
        if (File.Exists(single)) return [single];
        var index = Path.Combine(folder, "model.safetensors.index.json");
        if (!File.Exists(index))
            throw new PeftUserException($"{folder}: no model.safetensors or model.safetensors.index.json", UserErrorKind.Invalid);
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(index)); }
        catch (JsonException e) { throw new PeftUserException($"{index}: invalid JSON ({e.Message})"); }
        if (node?["weight_map"] is not JsonObject map)
            throw new PeftUserException($"{index}: 'weight_map' is missing or not an object");
        var shards = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (key, value) in map)
        {
            if (value is not JsonValue v || !v.TryGetValue<string>(out var shard) || shard.Contains('/') || shard.Contains('\\'))
                throw new PeftUserException($"{index}: weight_map['{key}'] must be a file name in the same folder");
            shards.Add(shard);
        }
        return shards.Select(s => Path.Combine(folder, s)).ToList();
    }
}
