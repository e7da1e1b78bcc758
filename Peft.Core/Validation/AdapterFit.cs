using System.Text.RegularExpressions;
using Peft.Core.Configs;
using Peft.Core.IO;
using Peft.Core.Models;

namespace Peft.Core.Validation;

/// <summary>
/// Does an adapter fit a base model? Every target module must exist in the base, every adapter tensor must belong to
/// a base module of the right kind, and every shape must follow from the base weight's shape and the config (rank,
/// feed-forward side, virtual tokens). Works on headers only; returns every problem found, not just the first.
/// </summary>
public static partial class AdapterFit
{
    /// <summary>Task heads PEFT adds to modules_to_save for these task types (saved whole, may be new to the base).</summary>
    private static readonly Dictionary<TaskType, string[]> TaskHeads = new()
    {
        [TaskType.SequenceClassification] = ["classifier", "score"],
        [TaskType.TokenClassification] = ["classifier", "score"],
        [TaskType.QuestionAnswering] = ["qa_outputs"],
    };

    /// <summary>Model types whose projection weights are stored [in, out] (GPT-2's Conv1D).</summary>
    private static readonly HashSet<string> TransposedWeights = ["gpt2"];

    private const int MaxProblems = 50;

    public static IReadOnlyList<string> Check(PeftConfig config, IReadOnlyList<SafetensorsEntry> tensors, BaseModelHeaders baseModel)
    {
        var problems = new List<string>();
        void Problem(string p)
        {
            if (problems.Count < MaxProblems) problems.Add(p);
        }
        if (tensors.Count == 0) Problem("adapter_model.safetensors holds no tensors");

        var index = new BaseIndex(baseModel);
        var modules = new SortedDictionary<string, Dictionary<string, SafetensorsEntry>>(StringComparer.Ordinal);
        SafetensorsEntry? prompt = null;
        var keep = (config.ModulesToSave ?? []).Concat(config.TaskType is { } t && TaskHeads.TryGetValue(t, out var h) ? h : []).ToList();
        foreach (var e in tensors)
        {
            var key = StripPrefix(e.Name);
            var m = AdapterTensor().Match(key);
            if (m.Success)
            {
                var kind = m.Groups["kind"].Value;
                bool ok = kind == "ia3_l" ? config is Ia3Config : config is LoraFamilyConfig;
                if (!ok) { Problem($"tensor '{e.Name}' is a {kind} tensor, which a {config.PeftType} adapter does not have"); continue; }
                var module = m.Groups["module"].Value;
                if (!modules.TryGetValue(module, out var parts)) modules[module] = parts = new(StringComparer.Ordinal);
                parts[kind] = e;
            }
            else if (key == "prompt_embeddings")
            {
                if (config is PromptLearningConfig) prompt = e;
                else Problem($"tensor '{e.Name}' holds prompt embeddings, which a {config.PeftType} adapter does not have");
            }
            else CheckWholeTensor(e, key, keep, config, index, Problem);
        }

        CheckTargetsExist(config, baseModel, index, Problem);
        foreach (var (module, parts) in modules)
        {
            var weight = index.Find(module + ".weight");
            if (weight is null)
            {
                Problem($"module '{module}' (tensor '{parts.Values.First().Name}') does not exist in the base model");
                continue;
            }
            if (weight.Shape.Length != 2)
            {
                Problem($"module '{module}' has a {weight.Shape.Length}-D weight {Fmt(weight.Shape)} in the base; adapters need a 2-D (linear/embedding) weight");
                continue;
            }
            if (config is Ia3Config ia3) CheckIa3(ia3, module, parts, weight, baseModel, Problem);
            else CheckLora((LoraFamilyConfig)config, module, parts, weight, baseModel, Problem);
        }
        if (config is PromptLearningConfig p) CheckPrompt(p, prompt, baseModel.Config, Problem);
        return problems;
    }

    /// <summary>PEFT's saved keys start with base_model.model. (tuners) or base_model. (prompt learning's heads).</summary>
    public static string StripPrefix(string key) =>
        key.StartsWith("base_model.model.", StringComparison.Ordinal) ? key["base_model.model.".Length..]
        : key.StartsWith("base_model.", StringComparison.Ordinal) ? key["base_model.".Length..] : key;

    [GeneratedRegex(@"^(?<module>.+)\.(?<kind>lora_A|lora_B|lora_E|lora_embedding_A|lora_embedding_B|lora_magnitude_vector|ranknum|ia3_l)(\.weight)?$")]
    private static partial Regex AdapterTensor();

    /// <summary>A tensor saved whole: a modules_to_save copy (or task head) or a bias trained with bias=all/lora_only.</summary>
    private static void CheckWholeTensor(SafetensorsEntry e, string key, List<string> keep, PeftConfig config, BaseIndex index, Action<string> problem)
    {
        bool saved = TargetMatching.IsUnderModulesToSave(key, keep);
        bool bias = key.EndsWith(".bias", StringComparison.Ordinal) && config is LoraFamilyConfig { Bias: not "none" };
        var baseEntry = index.Find(key);
        if (!saved && !bias)
        {
            problem($"tensor '{e.Name}' is neither an adapter weight nor under modules_to_save");
            return;
        }
        if (baseEntry is null)
        {
            // A new task head (e.g. classifier on a bare encoder) is legitimately absent from the base.
            if (!saved) problem($"tensor '{e.Name}' is a bias of '{key}', which does not exist in the base model");
            return;
        }
        if (!baseEntry.Shape.SequenceEqual(e.Shape) && !(saved && IsHead(key, keep)))
            problem($"tensor '{e.Name}' has shape {Fmt(e.Shape)} but the base's '{baseEntry.Name}' is {Fmt(baseEntry.Shape)}");
    }

    /// <summary>A head may change its output size (num_labels) against the base's head.</summary>
    private static bool IsHead(string key, List<string> keep) => keep.Any(k => key.StartsWith(k + ".", StringComparison.Ordinal) || key.Contains("." + k + ".", StringComparison.Ordinal));

    private static void CheckTargetsExist(PeftConfig config, BaseModelHeaders baseModel, BaseIndex index, Action<string> problem)
    {
        StringOrList? targets = config switch
        {
            LoraFamilyConfig l => l.TargetModules,
            Ia3Config i => i.TargetModules,
            _ => null,
        };
        if (targets is null) return;
        var moduleNames = index.ModuleNames;
        if (targets.Pattern is { } pattern)
        {
            bool any;
            try { any = moduleNames.Any(n => TargetMatching.IsFullMatch(pattern, n)); }
            catch (ArgumentException e) { problem($"target_modules regex '{pattern}' is invalid ({e.Message})"); return; }
            if (!any) problem($"target_modules regex '{pattern}' matches no module of the base model ({baseModel.Config.ModelType})");
            return;
        }
        foreach (var item in targets.Items ?? [])
            if (!moduleNames.Any(n => TargetMatching.MatchesList([item], n)))
                problem($"target module '{item}' does not exist in the base model ({baseModel.Config.ModelType})");
    }

    private static (long In, long Out) InOut(SafetensorsEntry weight, BaseModelHeaders baseModel) =>
        TransposedWeights.Contains(baseModel.Config.GetString("model_type") ?? "")
        && !weight.Name.EndsWith("wte.weight", StringComparison.Ordinal) && !weight.Name.EndsWith("wpe.weight", StringComparison.Ordinal)
        && !weight.Name.EndsWith("lm_head.weight", StringComparison.Ordinal)
            ? (weight.Shape[0], weight.Shape[1])
            : (weight.Shape[1], weight.Shape[0]);

    private static void CheckLora(LoraFamilyConfig config, string module, Dictionary<string, SafetensorsEntry> parts,
        SafetensorsEntry weight, BaseModelHeaders baseModel, Action<string> problem)
    {
        bool embedding = parts.ContainsKey("lora_embedding_A") || parts.ContainsKey("lora_embedding_B");
        string aKey = embedding ? "lora_embedding_A" : "lora_A", bKey = embedding ? "lora_embedding_B" : "lora_B";
        if (!parts.TryGetValue(aKey, out var a) || !parts.TryGetValue(bKey, out var b))
        {
            problem($"module '{module}' has {string.Join(" and ", parts.Keys.Order())} but not both {aKey} and {bKey}");
            return;
        }
        // Embedding LoRA: A is [r, num_embeddings], B [embedding_dim, r]; base [num_embeddings, embedding_dim].
        var (inF, outF) = embedding ? (weight.Shape[0], weight.Shape[1]) : InOut(weight, baseModel);
        long r = a.Shape.Length == 2 ? a.Shape[0] : -1;
        if (config is LoraConfig lora)
        {
            long expectedR = (long)(TargetMatching.PatternValue(lora.RankPattern, module) ?? lora.R);
            if (r != expectedR)
                problem($"tensor '{a.Name}' has rank {r} but the config gives module '{module}' rank {expectedR}");
            r = expectedR;
        }
        Expect(a, [r, inF], $"module '{module}' takes {inF} inputs in the base", problem);
        Expect(b, [outF, r], $"module '{module}' has {outF} outputs in the base", problem);
        if (parts.TryGetValue("lora_E", out var eEntry)) Expect(eEntry, [r, 1], "AdaLoRA's singular values are [r, 1]", problem);
        if (parts.TryGetValue("lora_magnitude_vector", out var mag)) Expect(mag, [outF], $"DoRA's magnitude has one entry per output ({outF})", problem);
    }

    private static void CheckIa3(Ia3Config config, string module, Dictionary<string, SafetensorsEntry> parts,
        SafetensorsEntry weight, BaseModelHeaders baseModel, Action<string> problem)
    {
        var v = parts["ia3_l"];
        var (inF, outF) = InOut(weight, baseModel);
        if (config.IsFeedforward(module)) Expect(v, [1, inF], $"feed-forward module '{module}' scales its {inF} inputs", problem);
        else Expect(v, [outF, 1], $"module '{module}' scales its {outF} outputs", problem);
    }

    private static void CheckPrompt(PromptLearningConfig config, SafetensorsEntry? prompt, ModelConfig model, Action<string> problem)
    {
        if (prompt is null)
        {
            problem($"a {config.PeftType} adapter needs a 'prompt_embeddings' tensor");
            return;
        }
        int? hidden = model.TryGetInt("hidden_size", "n_embd", "d_model");
        int? layers = model.TryGetInt("num_hidden_layers", "n_layer", "num_layers");
        int? heads = model.TryGetInt("num_attention_heads", "n_head", "num_heads");
        int? kvHeads = model.TryGetInt("num_key_value_heads") ?? heads;
        int tokenDim = config.TokenDim ?? hidden ?? 0;
        if (config is PrefixTuningConfig)
        {
            int numLayers = config.NumLayers ?? layers ?? 0;
            if (layers is int l && config.NumLayers is int n && n != l)
                problem($"num_layers is {n} but the base model has {l} layers");
            // Grouped-query attention keeps keys/values at head_dim × num_key_value_heads.
            long? kvDim = hidden is int hd && heads is int hh && kvHeads is int kv && hh > 0 ? (long)hd / hh * kv : null;
            if (hidden is int hs && tokenDim != hs && tokenDim != kvDim)
                problem($"token_dim is {tokenDim} but the base model's hidden size is {hs}" + (kvDim != hs ? $" (key/value size {kvDim})" : ""));
            Expect(prompt, [config.NumVirtualTokens ?? 0, (long)numLayers * 2 * tokenDim],
                "prefix tuning stores [num_virtual_tokens, num_layers × 2 × token_dim]", problem);
        }
        else
        {
            if (hidden is int hs && tokenDim != hs)
                problem($"token_dim is {tokenDim} but the base model's hidden size is {hs}");
            Expect(prompt, [config.TotalVirtualTokens, tokenDim],
                "prompt embeddings are [num_virtual_tokens × num_transformer_submodules, token_dim]", problem);
        }
    }

    private static void Expect(SafetensorsEntry e, long[] shape, string why, Action<string> problem)
    {
        if (!e.Shape.SequenceEqual(shape))
            problem($"tensor '{e.Name}' has shape {Fmt(e.Shape)}, expected {Fmt(shape)} ({why})");
    }

    private static string Fmt(long[] shape) => SafetensorsHeader.FormatShape(shape);

    /// <summary>
    /// Finds a base weight by an adapter's key, allowing for the head-model prefix (<c>bert.</c>, <c>model.</c>,
    /// <c>transformer.</c>) being present on one side only, and for output heads tied to the input embeddings.
    /// </summary>
    private sealed class BaseIndex
    {
        private readonly Dictionary<string, SafetensorsEntry> _byName = new(StringComparer.Ordinal);
        private readonly Dictionary<string, SafetensorsEntry?> _bySuffix = new(StringComparer.Ordinal);

        public BaseIndex(BaseModelHeaders baseModel)
        {
            foreach (var w in baseModel.Weights)
            {
                _byName[w.Name] = w;
                for (int i = w.Name.IndexOf('.'); i >= 0; i = w.Name.IndexOf('.', i + 1))
                {
                    var suffix = w.Name[(i + 1)..];
                    // Ambiguous suffixes map to null: only a unique match may stand in for a missing prefix.
                    _bySuffix[suffix] = _bySuffix.ContainsKey(suffix) ? null : w;
                }
            }
            ModuleNames = baseModel.Weights.Where(w => w.Name.EndsWith(".weight", StringComparison.Ordinal))
                .Select(w => w.Name[..^".weight".Length]).ToList();
            if (baseModel.Config.GetBool("tie_word_embeddings", true) && !ModuleNames.Any(n => n.EndsWith("lm_head", StringComparison.Ordinal)))
            {
                var embedding = baseModel.Weights.FirstOrDefault(w => TiedEmbeddings.Any(t => w.Name.EndsWith(t, StringComparison.Ordinal)));
                if (embedding is not null)
                {
                    TiedHead = embedding;
                    ModuleNames.Add("lm_head");
                }
            }
        }

        private static readonly string[] TiedEmbeddings = ["embed_tokens.weight", "wte.weight", "word_embeddings.weight", "shared.weight"];

        public List<string> ModuleNames { get; }

        private SafetensorsEntry? TiedHead { get; }

        public SafetensorsEntry? Find(string key)
        {
            if (_byName.TryGetValue(key, out var e)) return e;
            if (_bySuffix.TryGetValue(key, out var s) && s is not null) return s;
            for (int i = key.IndexOf('.'); i >= 0; i = key.IndexOf('.', i + 1))
                if (_byName.TryGetValue(key[(i + 1)..], out var shorter)) return shorter;
            if (TiedHead is not null && (key == "lm_head.weight" || key.EndsWith(".lm_head.weight", StringComparison.Ordinal))) return TiedHead;
            return null;
        }
    }
}
