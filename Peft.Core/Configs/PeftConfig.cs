using Peft.Core;
using System.Text.Json;
using System.Text.Json.Nodes;

using Peft.Core.IO;
using Peft.Core.Models;

namespace Peft.Core.Configs;

/// <summary>
/// Fields every adapter config has (<c>peft_type</c>, <c>task_type</c>, <c>base_model_name_or_path</c> ...). Each method
/// extends it. Serialised as <c>adapter_config.json</c> exactly like PEFT: snake_case keys, sorted, indent 2; unknown
/// keys from newer PEFT versions are ignored on load.
/// </summary>
public abstract class PeftConfig
{
    public abstract string PeftType { get; }
    public TaskType? TaskType { get; set; }
    public string? BaseModelNameOrPath { get; set; }
    public string? Revision { get; set; }
    public bool InferenceMode { get; set; }
    /// <summary>Keys that should be fully trained and saved next to the adapter (e.g. a classifier head).</summary>
    public List<string>? ModulesToSave { get; set; }

    /// <summary>
    /// Heads that PEFT's task wrappers add to modules_to_save at runtime (SEQ_CLS/TOKEN_CLS: classifier, score;
    /// QUESTION_ANS: qa_outputs), set by <see cref="PeftModel"/>. PEFT 0.10 does not write them to
    /// adapter_config.json, so neither does <see cref="ToJson"/>.
    /// </summary>
    public IReadOnlyList<string> TaskModulesToSave { get; internal set; } = [];

    /// <summary><see cref="ModulesToSave"/> plus <see cref="TaskModulesToSave"/>: what is actually trained and saved whole.</summary>
    public IReadOnlyList<string>? EffectiveModulesToSave =>
        TaskModulesToSave.Count == 0 ? ModulesToSave : (ModulesToSave ?? []).Union(TaskModulesToSave).ToList();

    /// <summary>True for prompt-learning methods (prefix/prompt tuning, P-tuning).</summary>
    public virtual bool IsPromptLearning => false;

    /// <summary>Throws <see cref="PeftConfigException"/> naming the field when a value is invalid.</summary>
    public virtual void Validate() { }

    /// <summary>Method-specific fields, written next to the common ones.</summary>
    protected abstract void WriteFields(JsonObject o);

    /// <summary>Reads method-specific fields.</summary>
    protected abstract void ReadFields(JsonFieldReader r);

    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["peft_type"] = PeftType,
            ["task_type"] = TaskType?.ToPeftString(),
            ["base_model_name_or_path"] = BaseModelNameOrPath,
            ["revision"] = Revision,
            ["inference_mode"] = InferenceMode,
            ["auto_mapping"] = null,
            ["peft_version"] = PeftVersion,
            ["modules_to_save"] = JsonFieldReader.ToNode(ModulesToSave),
        };
        WriteFields(o);
        return SortKeys(o);
    }

    /// <summary>The PEFT version whose config layout we write (adapters load in that version and later).</summary>
    public const string PeftVersion = "0.10.0";

    public string ToJsonString() => ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    public void Save(string path) => AtomicFile.WriteAllText(path, ToJsonString());

    internal void ReadCommon(JsonFieldReader r)
    {
        TaskType = TaskTypes.Parse(r.String("task_type"));
        BaseModelNameOrPath = r.String("base_model_name_or_path");
        Revision = r.String("revision");
        InferenceMode = r.Bool("inference_mode") ?? false;
        ModulesToSave = r.StringList("modules_to_save");
        ReadFields(r);
    }

    private static JsonObject SortKeys(JsonObject o)
    {
        var sorted = new JsonObject();
        foreach (var kv in o.OrderBy(k => k.Key, StringComparer.Ordinal).ToList())
        {
            o.Remove(kv.Key);
            sorted[kv.Key] = kv.Value is JsonObject child ? SortKeys(child) : kv.Value;
        }
        return sorted;
    }

    /// <summary>
    /// Deep copy via the JSON text: re-parsing the in-memory nodes would fail, because a JsonValue built from an int
    /// (e.g. lora_alpha 8) does not convert to double the way a parsed number does.
    /// </summary>
    /// Not validated: a copy of an invalid config reports its problem where it is used, not as a clone error.
    public PeftConfig Clone() => PeftConfigs.Parse((JsonObject)JsonNode.Parse(ToJsonString())!, "(clone)", validate: false);
}

public sealed class PeftConfigException(string message) : PeftUserException(message);

/// <summary>Typed reads from a config JSON object, with errors that name the file and the key.</summary>
public sealed class JsonFieldReader(JsonObject json, string source)
{
    public string Source => source;
    public JsonObject Json => json;

    public PeftConfigException Error(string key, string problem) => new($"{source}: '{key}' {problem}");

    private JsonNode? Get(string key) => json.TryGetPropertyValue(key, out var v) ? v : null;

    public string? String(string key)
    {
        var v = Get(key);
        if (v is null) return null;
        if (v is JsonValue jv && jv.TryGetValue<string>(out var s)) return s;
        throw Error(key, $"must be a string, got {v.ToJsonString()}");
    }

    public bool? Bool(string key)
    {
        var v = Get(key);
        if (v is null) return null;
        if (v is JsonValue jv && jv.TryGetValue<bool>(out var b)) return b;
        throw Error(key, $"must be true or false, got {v.ToJsonString()}");
    }

    public int? Int(string key)
    {
        var v = Get(key);
        if (v is null) return null;
        if (v is JsonValue jv)
        {
            if (jv.TryGetValue<int>(out var i)) return i;
            if (jv.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
        }
        throw Error(key, $"must be an integer, got {v.ToJsonString()}");
    }

    public double? Double(string key)
    {
        var v = Get(key);
        if (v is null) return null;
        if (v is JsonValue jv && jv.TryGetValue<double>(out var d)) return d;
        throw Error(key, $"must be a number, got {v.ToJsonString()}");
    }

    public List<string>? StringList(string key)
    {
        var v = Get(key);
        if (v is null) return null;
        if (v is JsonArray a && a.All(x => x is JsonValue xv && xv.TryGetValue<string>(out _)))
            return a.Select(x => x!.GetValue<string>()).ToList();
        throw Error(key, $"must be a list of strings, got {v.ToJsonString()}");
    }

    /// <summary>A value that is either a string or a list of strings (e.g. target_modules).</summary>
    public StringOrList? StringOrList(string key)
    {
        var v = Get(key);
        if (v is null) return null;
        if (v is JsonValue jv && jv.TryGetValue<string>(out var s)) return new StringOrList(s, null);
        if (v is JsonArray) return new StringOrList(null, StringList(key));
        throw Error(key, $"must be a string or a list of strings, got {v.ToJsonString()}");
    }

    public List<int>? IntOrIntList(string key)
    {
        var v = Get(key);
        if (v is null) return null;
        if (v is JsonValue) return [Int(key)!.Value];
        if (v is JsonArray a)
        {
            try { return a.Select(x => x!.GetValue<int>()).ToList(); }
            catch (Exception) { throw Error(key, $"must be an integer or a list of integers, got {v.ToJsonString()}"); }
        }
        throw Error(key, $"must be an integer or a list of integers, got {v.ToJsonString()}");
    }

    public Dictionary<string, double> NumberMap(string key)
    {
        var v = Get(key);
        var result = new Dictionary<string, double>();
        if (v is null) return result;
        if (v is not JsonObject o) throw Error(key, $"must be an object, got {v.ToJsonString()}");
        foreach (var (k, val) in o)
        {
            if (val is JsonValue jv && jv.TryGetValue<double>(out var d)) result[k] = d;
            else throw Error($"{key}.{k}", $"must be a number, got {val?.ToJsonString() ?? "null"}");
        }
        return result;
    }

    public JsonNode? Raw(string key) => Get(key)?.DeepClone();

    public static JsonNode? ToNode(List<string>? list) => list is null ? null : new JsonArray(list.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray());
}

/// <summary>PEFT fields typed <c>Optional[Union[List[str], str]]</c>: a regex string or a list of names.</summary>
public sealed record StringOrList(string? Pattern, List<string>? Items)
{
    public static implicit operator StringOrList(string pattern) => new(pattern, null);
    public static implicit operator StringOrList(string[] items) => new(null, items.ToList());
    public static StringOrList Of(params string[] items) => new(null, items.ToList());

    public JsonNode? ToNode() => Pattern is not null ? JsonValue.Create(Pattern) : JsonFieldReader.ToNode(Items);

    public override string ToString() => Pattern ?? "[" + string.Join(", ", Items ?? []) + "]";
}
