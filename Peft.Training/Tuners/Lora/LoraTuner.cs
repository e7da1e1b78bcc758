using Peft.Training.Models;
using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.Lora;

public sealed class LoraMethod : IPeftMethod
{
    public string PeftType => "LORA";
    public PeftConfig CreateConfig() => new LoraConfig();
    public ITuner CreateTuner(PeftModel model) => new LoraTuner(model);
}

/// <summary>PEFT's <c>LoraModel</c>: injects <see cref="LoraLayer"/>s into targeted Linear/Conv1D/Embedding layers.</summary>
public sealed partial class LoraTuner : ITuner
{
    private readonly PeftModel _owner;
    /// <summary>Module path (relative to the base model) → LoRA layer, in model order.</summary>
    private readonly List<(string Path, LoraLayer Layer)> _layers = new();
    private readonly Dictionary<string, LoraConfig> _configs = new();

    public LoraTuner(PeftModel owner) => _owner = owner;

    private PretrainedModel Base => _owner.BaseModel;

    public IReadOnlyList<(string Path, LoraLayer Layer)> Layers => _layers;

    public void AddAdapter(string name, PeftConfig config)
    {
        var cfg = (LoraConfig)config;
        cfg.Validate();
        var targets = ResolveTargets(cfg);
        var matched = new List<(string, IAdaptableLayer)>();
        foreach (var (path, module) in Base.named_modules())
        {
            if (string.IsNullOrEmpty(path) || TargetMatching.IsUnderModulesToSave(path, cfg.EffectiveModulesToSave)) continue;
            if (!TargetMatching.IsTargeted(path, targets, cfg.ExcludeModules, cfg.LayersToTransform, cfg.LayersPattern)) continue;
            if (TargetMatching.IsAdapterInternal(path)) continue;
            if (module is not IAdaptableLayer host)
            {
                // Containers (e.g. "self_attn") matched by a regex are skipped like PEFT does for non-leaf matches;
                // a matched leaf of an unsupported type is an error.
                if (module.children().Any()) continue;
                throw new PeftConfigException($"Target module '{path}' ({module.GetType().Name}) is not supported. LoRA supports Linear, Conv1D and Embedding layers.");
            }
            matched.Add((path, host));
        }
        if (matched.Count == 0)
            throw new PeftConfigException($"Target modules {targets} not found in the base model. Please check the target modules and try again.");
        var gen = _owner.Generator;
        foreach (var (path, host) in matched)
        {
            int r = (int)(TargetMatching.PatternValue(cfg.RankPattern, path) ?? cfg.R);
            double alpha = TargetMatching.PatternValue(cfg.AlphaPattern, path) ?? cfg.LoraAlpha;
            if (host.Tuner is not null and not LoraLayer)
                throw new PeftConfigException($"module '{path}' already carries an adapter of another type");
            var layer = host.Tuner as LoraLayer;
            if (layer is null)
            {
                layer = new LoraLayer(host);
                _layers.Add((path, layer));
            }
            var settings = new LoraAdapterSettings(r, alpha, cfg.LoraDropout, cfg.UseRslora, cfg.UseDora, cfg.LoraBias);
            layer.AddAdapter(name, settings, cfg.InitMode, gen);
        }
        // PEFT mutates fan_in_fan_out to what the layer type needs (Conv1D: true, Linear: false).
        if (matched[0].Item2 is LinearLayer first) cfg.FanInFanOut = first.FanInFanOut;
        cfg.TargetModules ??= targets;
        _configs[name] = cfg;
    }

    private StringOrList ResolveTargets(LoraConfig cfg)
    {
        if (cfg.TargetModules is null)
            return StringOrList.Of(DefaultTargets.For(DefaultTargets.Lora, Base.ModelType, "LoRA"));
        if (cfg.TargetModules.Pattern is { } p && p.Equals("all-linear", StringComparison.OrdinalIgnoreCase))
        {
            // Heads are trained whole (modules_to_save), never adapted: skip the LM head and any classifier/score/QA head.
            string? head = Base.OutputEmbeddingName;
            var names = Base.named_modules()
                .Where(m => m.module is LinearLayer && !TargetMatching.IsAdapterInternal(m.name) && m.name != head
                    && !(m.name is "classifier" or "score" or "qa_outputs") && !TargetMatching.IsUnderModulesToSave(m.name, cfg.EffectiveModulesToSave))
                .Select(m => m.name.Split('.')[^1]).Distinct().ToList();
            cfg.TargetModules = new StringOrList(null, names);
            return cfg.TargetModules;
        }
        return cfg.TargetModules;
    }

    public void DeleteAdapter(string name)
    {
        foreach (var (_, layer) in _layers) layer.DeleteAdapter(name);
        _configs.Remove(name);
        for (int i = _layers.Count - 1; i >= 0; i--)
        {
            if (_layers[i].Layer.Settings.Count > 0) continue;
            _layers[i].Layer.Detach();
            _layers.RemoveAt(i);
        }
    }

    public void SetActiveAdapters(IReadOnlyList<string> names)
    {
        foreach (var (_, layer) in _layers)
        {
            layer.ActiveAdapters.Clear();
            layer.ActiveAdapters.AddRange(names.Where(layer.Has));
        }
    }

    public bool Disabled
    {
        get => _layers.Count > 0 && _layers[0].Layer.Disabled;
        set { foreach (var (_, l) in _layers) l.Disabled = value; }
    }

    public bool CanMerge => true;

    public IEnumerable<AdapterTensor> AdapterTensors(string adapter)
    {
        var cfg = _configs[adapter];
        foreach (var (path, layer) in _layers)
        {
            if (!layer.Has(adapter)) continue;
            string prefix = $"base_model.model.{path}.";
            var (a, b) = layer.Factors(adapter);
            if (layer.IsEmbedding)
            {
                yield return new(prefix + "lora_embedding_A", (TorchSharp.Modules.Parameter)a);
                yield return new(prefix + "lora_embedding_B", (TorchSharp.Modules.Parameter)b);
                continue;
            }
            yield return new(prefix + "lora_A.weight", (TorchSharp.Modules.Parameter)a);
            yield return new(prefix + "lora_B.weight", (TorchSharp.Modules.Parameter)b);
            if (layer.LoraBBias(adapter) is { } lb) yield return new(prefix + "lora_B.bias", lb);
            if (layer.Magnitude(adapter) is { } m) yield return new(prefix + "lora_magnitude_vector", m);
        }
        foreach (var t in BiasTensors(cfg.Bias)) yield return t;
    }

    /// <summary>bias="all": every bias of the model; "lora_only": biases of LoRA-wrapped layers (PEFT's key names).</summary>
    internal IEnumerable<AdapterTensor> BiasTensors(string bias)
    {
        if (bias == "none") yield break;
        var hosts = _layers.ToDictionary(l => l.Path, l => l.Layer);
        foreach (var (name, p) in Base.UniqueNamedParameters())
        {
            if (!(name == "bias" || name.EndsWith(".bias", StringComparison.Ordinal))) continue;
            string owner = name.Length > 5 ? name[..^5] : "";
            if (name.Contains(".lora_")) continue;
            bool wrapped = hosts.ContainsKey(owner);
            if (bias == "lora_only" && !wrapped) continue;
            string hfName = wrapped ? owner + ".base_layer.bias" : name;
            yield return new("base_model.model." + hfName, p);
        }
    }

    public ModelOutput Forward(ForwardArgs args, IReadOnlyList<string>? rowAdapterNames)
    {
        if (rowAdapterNames is null) return Base.Forward(args);
        foreach (var n in rowAdapterNames.Distinct())
            if (n != LoraLayer.BaseRowName && !_configs.ContainsKey(n))
                throw new ArgumentException($"adapter_names contains unknown adapter '{n}' (known: {string.Join(", ", _configs.Keys)})");
        if (Base.training) throw new InvalidOperationException("mixed-batch adapter_names cannot be used in training mode");
        try
        {
            foreach (var (_, l) in _layers) l.RowAdapterNames = rowAdapterNames;
            return Base.Forward(args);
        }
        finally
        {
            foreach (var (_, l) in _layers) l.RowAdapterNames = null;
        }
    }

    public void Merge(IReadOnlyList<string>? adapters, bool safe)
    {
        foreach (var (_, l) in _layers) l.Merge(adapters ?? l.ActiveAdapters.ToList(), safe);
    }

    public void Unmerge()
    {
        foreach (var (_, l) in _layers) l.Unmerge();
    }

    public void Unload(bool merge, IReadOnlyList<string>? adapters, bool safe)
    {
        if (merge) Merge(adapters, safe);
        foreach (var (_, l) in _layers) l.Detach();
        _layers.Clear();
        _configs.Clear();
    }

    internal LoraConfig Config(string adapter) => _configs[adapter];
}
