using Peft.Training.Models;
using Peft.Training.Nn;
using TorchSharp;

namespace Peft.Training.Tuners.Ia3;

public sealed class Ia3Method : IPeftMethod
{
    public string PeftType => "IA3";
    public ITuner CreateTuner(PeftModel model) => new Ia3Tuner(model);
}

/// <summary>PEFT's <c>IA3Model</c>: injects <see cref="Ia3Layer"/>s into targeted Linear/Conv1D layers.</summary>
public sealed class Ia3Tuner(PeftModel owner) : LayerTuner<Ia3Layer, Ia3Config>(owner)
{
    /// <summary>PEFT 0.10 defaults (target modules, feed-forward modules) per model_type; qwen2 has none there.</summary>
    public static readonly IReadOnlyDictionary<string, (string[] Targets, string[] Feedforward)> Defaults =
        new Dictionary<string, (string[], string[])>
        {
            ["t5"] = (["k", "v", "wo"], ["wo"]),
            ["mt5"] = (["k", "v", "wi_1"], []),
            ["gpt2"] = (["c_attn", "mlp.c_proj"], ["mlp.c_proj"]),
            ["bloom"] = (["query_key_value", "mlp.dense_4h_to_h"], ["mlp.dense_4h_to_h"]),
            ["roberta"] = (["key", "value", "output.dense"], ["output.dense"]),
            ["bert"] = (["key", "value", "output.dense"], ["output.dense"]),
            ["opt"] = (["q_proj", "k_proj", "fc2"], ["fc2"]),
            ["gptj"] = (["q_proj", "v_proj", "fc_out"], ["fc_out"]),
            ["gpt_neox"] = (["query_key_value", "dense_4h_to_h"], ["dense_4h_to_h"]),
            ["gpt_neo"] = (["q_proj", "v_proj", "c_proj"], ["c_proj"]),
            ["bart"] = (["q_proj", "v_proj", "fc2"], ["fc2"]),
            ["gpt_bigcode"] = (["c_attn", "mlp.c_proj"], ["mlp.c_proj"]),
            ["llama"] = (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
            ["mistral"] = (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
            ["falcon"] = (["query_key_value", "dense_4h_to_h"], ["dense_4h_to_h"]),
            ["deberta-v2"] = (["key_proj", "value_proj", "output.dense"], ["output.dense"]),
            ["deberta"] = (["in_proj", "output.dense"], ["output.dense"]),
        };

    protected override string MethodName => "IA3";

    public override void AddAdapter(string name, PeftConfig config)
    {
        var cfg = (Ia3Config)config;
        FillDefaults(cfg, Base.ModelType);
        cfg.Validate();
        var matched = MatchTargets<LinearLayer>(cfg.TargetModules!, cfg.ExcludeModules, null, null, cfg.EffectiveModulesToSave, "Linear and Conv1D layers");
        foreach (var (path, host) in matched)
        {
            var layer = LayerFor(path, host, () => new Ia3Layer(host, cfg.IsFeedforward(path)));
            layer.AddAdapter(name, cfg.InitIa3Weights, _owner.Generator);
        }
        // PEFT corrects fan_in_fan_out to the layer type (Conv1D: true, Linear: false).
        cfg.FanInFanOut = matched[0].Host.FanInFanOut;
        _configs[name] = cfg;
    }

    internal static void FillDefaults(Ia3Config cfg, string modelType)
    {
        if (cfg.TargetModules is not null && cfg.FeedforwardModules is not null) return;
        if (!Defaults.TryGetValue(modelType, out var d))
            throw new PeftConfigException(cfg.TargetModules is null
                ? $"IA3: no default target_modules for model_type '{modelType}'; set target_modules and feedforward_modules explicitly"
                : $"IA3: no default feedforward_modules for model_type '{modelType}'; set feedforward_modules explicitly ([] for none)");
        cfg.TargetModules ??= StringOrList.Of(d.Targets);
        cfg.FeedforwardModules ??= StringOrList.Of(d.Feedforward);
    }

    public override IEnumerable<AdapterTensor> AdapterTensors(string adapter)
    {
        foreach (var (path, layer) in _layers)
            if (layer.Has(adapter)) yield return new($"base_model.model.{path}.ia3_l", layer.Vector(adapter));
    }

    /// <summary>
    /// Creates adapter <paramref name="newName"/> with l = Σ wₐ·lₐ on every layer (PEFT's only IA3 combination, "linear").
    /// Targets / feed-forward modules are the union of the sources'; the new adapter is added inactive and frozen.
    /// </summary>
    public void AddWeightedAdapter(IReadOnlyList<string> adapters, IReadOnlyList<double> weights, string newName)
    {
        if (adapters.Count == 0) throw new ArgumentException("at least one adapter is required");
        if (adapters.Count != weights.Count) throw new ArgumentException($"got {adapters.Count} adapters but {weights.Count} weights");
        foreach (var a in adapters)
            if (!_configs.ContainsKey(a)) throw new ArgumentException($"adapter '{a}' does not exist");
        if (_configs.ContainsKey(newName)) throw new ArgumentException($"adapter '{newName}' already exists");
        var sources = adapters.Select(a => _configs[a]).ToList();
        var cfg = (Ia3Config)sources[0].Clone();
        cfg.TargetModules = Union(sources.Select(s => s.TargetModules!).ToList(), "target_modules");
        cfg.FeedforwardModules = Union(sources.Select(s => s.FeedforwardModules!).ToList(), "feedforward_modules");
        _owner.AddAdapter(newName, cfg);
        using var noGrad = torch.no_grad();
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        var weightScalars = weights.Select(w => w.ToScalar()).ToArray();
        try
        {
            foreach (var (_, layer) in _layers)
            {
                if (!layer.Has(newName)) continue;
                var target = layer.Vector(newName);
                target.zero_();
                for (int i = 0; i < adapters.Count; i++)
                    if (layer.Has(adapters[i])) target.add_(layer.Vector(adapters[i]) * weightScalars[i]);
            }
        }
        finally
        {
            foreach (var w in weightScalars) w.Dispose();
        }
    }

    /// <summary>Regexes are OR-ed ("(a)|(b)"), lists are united; mixing the two kinds is refused like PEFT does.</summary>
    private static StringOrList Union(List<StringOrList> specs, string field)
    {
        bool regex = specs[0].Pattern is not null;
        if (specs.Any(s => (s.Pattern is not null) != regex))
            throw new ArgumentException($"all adapters must use the same kind of {field} (all regex strings or all lists)");
        return regex
            ? new StringOrList(string.Join("|", specs.Select(s => $"({s.Pattern})")), null)
            : new StringOrList(null, specs.SelectMany(s => s.Items!).Distinct().ToList());
    }
}
