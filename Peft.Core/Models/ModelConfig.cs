using Peft.Core;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Core.Models;

/// <summary>
/// A Hugging Face <c>config.json</c>, kept as raw JSON so unknown keys survive a save, with typed getters that
/// accept the aliases different families use (e.g. <c>n_embd</c> / <c>hidden_size</c> / <c>d_model</c>).
/// </summary>
public sealed class ModelConfig
{
    private readonly JsonObject _json;

    public ModelConfig(JsonObject json, string? sourcePath = null)
    {
        _json = json;
        SourcePath = sourcePath;
    }

    /// <summary>File the config came from (for error messages), if any.</summary>
    public string? SourcePath { get; }

    public JsonObject Json => _json;

    public string ModelType => GetString("model_type")
        ?? throw Error("model_type", "is missing");

    public static ModelConfig Load(string path)
    {
        if (!File.Exists(path)) throw new PeftUserException($"{path}: config.json not found", UserErrorKind.NotFound);
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new ModelConfigException($"{path}: invalid JSON ({e.Message})"); }
        if (node is not JsonObject obj) throw new ModelConfigException($"{path}: expected a JSON object");
        return new ModelConfig(obj, path);
    }

    public static ModelConfig FromFolder(string modelDir) => Load(Path.Combine(modelDir, "config.json"));

    public static ModelConfig Parse(string json) =>
        new((JsonNode.Parse(json) as JsonObject) ?? throw new ModelConfigException("config: expected a JSON object"));

    public bool Has(string key) => _json.TryGetPropertyValue(key, out var v) && v is not null;

    public string? GetString(string key) =>
        _json.TryGetPropertyValue(key, out var v) && v is JsonValue jv && jv.TryGetValue<string>(out var s) ? s : null;

    /// <summary>First present key among <paramref name="keys"/> as an int; throws naming the keys if none.</summary>
    public int GetInt(params string[] keys) => TryGetInt(keys) ?? throw Error(string.Join("|", keys), "is missing");

    public int? TryGetInt(params string[] keys)
    {
        foreach (var k in keys)
        {
            if (!_json.TryGetPropertyValue(k, out var v) || v is null) continue;
            if (v is JsonValue jv)
            {
                if (jv.TryGetValue<int>(out var i)) return i;
                if (jv.TryGetValue<long>(out var l)) return checked((int)l);
                if (jv.TryGetValue<double>(out var d) && d == Math.Floor(d)) return (int)d;
            }
            throw Error(k, $"must be an integer, got {v.ToJsonString()}");
        }
        return null;
    }

    public double GetDouble(string key, double fallback) => TryGetDouble(key) ?? fallback;

    public double? TryGetDouble(params string[] keys)
    {
        foreach (var k in keys)
        {
            if (!_json.TryGetPropertyValue(k, out var v) || v is null) continue;
            if (v is JsonValue jv && jv.TryGetValue<double>(out var d)) return d;
            throw Error(k, $"must be a number, got {v.ToJsonString()}");
        }
        return null;
    }

    /// <summary>A dropout probability (first of <paramref name="keys"/> present), in [0, 1] as torch requires.</summary>
    public double GetRate(double fallback, params string[] keys)
    {
        double p = TryGetDouble(keys) ?? fallback;
        string key = keys.FirstOrDefault(k => _json.TryGetPropertyValue(k, out var v) && v is not null) ?? keys[0];
        if (p is < 0 or > 1 || double.IsNaN(p)) throw Error(key, $"is a dropout probability and must be between 0 and 1, got {p}");
        return p;
    }

    public bool GetBool(string key, bool fallback)
    {
        if (!_json.TryGetPropertyValue(key, out var v) || v is null) return fallback;
        if (v is JsonValue jv && jv.TryGetValue<bool>(out var b)) return b;
        throw Error(key, $"must be true or false, got {v.ToJsonString()}");
    }

    public JsonObject? GetObject(string key) =>
        _json.TryGetPropertyValue(key, out var v) && v is JsonObject o ? o : null;

    /// <summary>Token id fields may be an int or a list (eos_token_id in Llama-3); returns all ids.</summary>
    public IReadOnlyList<int> GetIds(string key)
    {
        if (!_json.TryGetPropertyValue(key, out var v) || v is null) return Array.Empty<int>();
        if (v is JsonArray arr) return arr.Select(x => x!.GetValue<int>()).ToArray();
        return new[] { v.GetValue<int>() };
    }

    public ModelConfigException Error(string key, string problem) =>
        new($"{SourcePath ?? "config.json"}: '{key}' {problem}");

    public void Save(string path)
    {
        var text = _json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        IO.AtomicFile.WriteAllText(path, text + "\n");
    }

    public ModelConfig Clone() => new((JsonObject)_json.DeepClone(), SourcePath);
}

public sealed class ModelConfigException(string message) : PeftUserException(message);
