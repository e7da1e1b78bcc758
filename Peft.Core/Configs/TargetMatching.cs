using System.Text.RegularExpressions;

namespace Peft.Core.Configs;

/// <summary>
/// PEFT's rules for which modules an adapter targets (<c>check_target_module_exists</c>): a string is a full-match
/// regex, a list matches exact keys or <c>.suffix</c>es; <c>exclude_modules</c>, <c>layers_to_transform</c> /
/// <c>layers_pattern</c> filter further.
/// </summary>
public static class TargetMatching
{
    public static bool IsFullMatch(string pattern, string key) => Regex.IsMatch(key, $"^(?:{pattern})$");

    /// <summary>List semantics: the key equals an item or ends with "." + item.</summary>
    public static bool MatchesList(IEnumerable<string> items, string key) =>
        items.Any(t => key == t || key.EndsWith("." + t, StringComparison.Ordinal));

    public static bool Matches(StringOrList spec, string key) =>
        spec.Pattern is not null ? IsFullMatch(spec.Pattern, key) : MatchesList(spec.Items!, key);

    /// <summary>Decides whether <paramref name="key"/> is targeted (exclusions and layer filters applied).</summary>
    public static bool IsTargeted(string key, StringOrList targets, StringOrList? exclude,
        IReadOnlyList<int>? layersToTransform, StringOrList? layersPattern)
    {
        if (exclude is not null && Matches(exclude, key)) return false;
        if (!Matches(targets, key)) return false;
        if (layersToTransform is null) return true;
        int? index = LayerIndex(key, layersPattern);
        return index is int i && layersToTransform.Contains(i);
    }

    /// <summary>The layer number in a key such as <c>model.layers.3.self_attn.q_proj</c>.</summary>
    public static int? LayerIndex(string key, StringOrList? layersPattern)
    {
        IEnumerable<string> patterns = layersPattern is null ? ["[^.]*"]
            : layersPattern.Pattern is not null ? [Regex.Escape(layersPattern.Pattern)]
            : layersPattern.Items!.Select(Regex.Escape);
        foreach (var p in patterns)
        {
            var m = Regex.Match(key, $"^.*?\\.{p}\\.(\\d+)\\.");
            if (m.Success) return int.Parse(m.Groups[1].Value);
        }
        return null;
    }

    /// <summary>
    /// First <c>rank_pattern</c>/<c>alpha_pattern</c> key K with <c>re.match(r"(.*\.)?(K)$", key)</c>, in dictionary order.
    /// </summary>
    public static double? PatternValue(IReadOnlyDictionary<string, double> patterns, string key)
    {
        foreach (var (k, v) in patterns)
            if (Regex.IsMatch(key, $"^(.*\\.)?({k})$")) return v;
        return null;
    }

    private static readonly HashSet<string> AdapterContainers =
    [
        "lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector", "lora_E",
        "ia3_l", "ranknum", "modules_to_save", "prompt_encoder",
    ];

    /// <summary>True for modules that belong to an adapter (never targets themselves).</summary>
    public static bool IsAdapterInternal(string path) => path.Split('.').Any(AdapterContainers.Contains);

    /// <summary>True for a module name (one path segment) under which only adapter tensors live.</summary>
    public static bool IsAdapterContainer(string segment) => AdapterContainers.Contains(segment);

    /// <summary>Under one of <paramref name="modulesToSave"/> (regex <c>(^|.*\.)NAME($|\..*)</c>)?</summary>
    public static bool IsUnderModulesToSave(string key, IEnumerable<string>? modulesToSave) =>
        modulesToSave is not null && modulesToSave.Any(m => Regex.IsMatch(key, $"(^|.*\\.){Regex.Escape(m)}($|\\..*)"));
}

/// <summary>Per-architecture default targets (PEFT's <c>TRANSFORMERS_MODELS_TO_*_TARGET_MODULES_MAPPING</c>).</summary>
public static class DefaultTargets
{
    public static readonly IReadOnlyDictionary<string, string[]> Lora = new Dictionary<string, string[]>
    {
        ["t5"] = ["q", "v"], ["mt5"] = ["q", "v"], ["bart"] = ["q_proj", "v_proj"], ["gpt2"] = ["c_attn"],
        ["bloom"] = ["query_key_value"], ["opt"] = ["q_proj", "v_proj"], ["gptj"] = ["q_proj", "v_proj"],
        ["gpt_neox"] = ["query_key_value"], ["gpt_neo"] = ["q_proj", "v_proj"], ["bert"] = ["query", "value"],
        ["roberta"] = ["query", "value"], ["xlm-roberta"] = ["query", "value"], ["electra"] = ["query", "value"],
        ["deberta-v2"] = ["query_proj", "value_proj"], ["deberta"] = ["in_proj"], ["llama"] = ["q_proj", "v_proj"],
        ["mistral"] = ["q_proj", "v_proj"], ["mixtral"] = ["q_proj", "v_proj"], ["qwen2"] = ["q_proj", "v_proj"],
        ["gemma"] = ["q_proj", "v_proj"], ["gemma2"] = ["q_proj", "v_proj"], ["falcon"] = ["query_key_value"],
        ["phi"] = ["q_proj", "v_proj", "fc1", "fc2"], ["stablelm"] = ["q_proj", "v_proj"],
    };

    public static string[] For(IReadOnlyDictionary<string, string[]> table, string modelType, string method) =>
        table.TryGetValue(modelType, out var t) ? t
            : throw new PeftConfigException($"{method}: no default target_modules for model_type '{modelType}'; set target_modules explicitly");
}
