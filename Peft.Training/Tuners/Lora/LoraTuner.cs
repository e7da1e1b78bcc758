using Peft.Training.Models;
using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.Lora;

public sealed class LoraMethod : IPeftMethod
{
    public string PeftType => "LORA";
    public ITuner CreateTuner(PeftModel model) => new LoraTuner(model);
}

/// <summary>PEFT's <c>LoraModel</c>: injects <see cref="LoraLayer"/>s into targeted Linear/Conv1D/Embedding layers.</summary>
public sealed partial class LoraTuner(PeftModel owner) : LayerTuner<LoraLayer, LoraConfig>(owner)
{
    protected override string MethodName => "LoRA";

    /// <summary>The row names of the forward in progress (null outside a mixed-batch forward).</summary>
    private IReadOnlyList<string>? _rowAdapterNames;

    public override void AddAdapter(string name, PeftConfig config)
    {
        if (config is Ia3Config ia3)
        {
            AddIa3Rows(name, ia3);
            return;
        }
        var cfg = (LoraConfig)config;
        cfg.Validate();
        var targets = ResolveTargets(cfg);
        var matched = MatchTargets<IAdaptableLayer>(targets, cfg.ExcludeModules, cfg.LayersToTransform, cfg.LayersPattern,
            cfg.EffectiveModulesToSave, "Linear, Conv1D and Embedding layers");
        foreach (var (path, host) in matched)
        {
            int r = (int)(TargetMatching.PatternValue(cfg.RankPattern, path) ?? cfg.R);
            double alpha = TargetMatching.PatternValue(cfg.AlphaPattern, path) ?? cfg.LoraAlpha;
            var layer = LayerFor(path, host, () => new LoraLayer(host, Base.Dropout));
            var settings = new LoraAdapterSettings(r, alpha, cfg.LoraDropout, cfg.UseRslora, cfg.UseDora, cfg.LoraBias);
            layer.AddAdapter(name, settings, cfg.InitMode, _owner.Generator);
        }
        // PEFT mutates fan_in_fan_out to what the layer type needs (Conv1D: true, Linear: false).
        if (matched[0].Host is LinearLayer first) cfg.FanInFanOut = first.FanInFanOut;
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
            var names = BaseModules.Of(Base)
                .Where(m => m.Module is LinearLayer && m.Path != head
                    && !(m.Path is "classifier" or "score" or "qa_outputs") && !TargetMatching.IsUnderModulesToSave(m.Path, cfg.EffectiveModulesToSave))
                .Select(m => m.Path.Split('.')[^1]).Distinct().ToList();
            cfg.TargetModules = new StringOrList(null, names);
            return cfg.TargetModules;
        }
        return cfg.TargetModules;
    }

    public override IEnumerable<AdapterTensor> AdapterTensors(string adapter)
    {
        if (_ia3Rows.ContainsKey(adapter))
        {
            foreach (var (path, layer) in _layers)
                if (layer.HasIa3(adapter)) yield return new($"base_model.model.{path}.ia3_l", layer.Ia3Vector(adapter));
            yield break;
        }
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

    public override ModelOutput Forward(ForwardArgs args, IReadOnlyList<string>? rowAdapterNames)
    {
        if (rowAdapterNames is null) return Base.Forward(args);
        foreach (var n in rowAdapterNames.Distinct())
            if (n != LoraLayer.BaseRowName && !_configs.ContainsKey(n) && !_ia3Rows.ContainsKey(n))
                throw new ArgumentException($"adapter_names contains unknown adapter '{n}' (known: {string.Join(", ", _configs.Keys)})");
        if (Base.training) throw new InvalidOperationException("mixed-batch adapter_names cannot be used in training mode");
        // A forward may run inside another one (a serving prefill between the layers of a decode step): the outer
        // forward's rows come back afterwards, also on a layer created in between.
        var outer = _rowAdapterNames;
        try
        {
            _rowAdapterNames = rowAdapterNames;
            foreach (var (_, l) in _layers) l.RowAdapterNames = rowAdapterNames;
            return Base.Forward(args);
        }
        finally
        {
            _rowAdapterNames = outer;
            foreach (var (_, l) in _layers) l.RowAdapterNames = outer;
        }
    }

    internal LoraConfig Config(string adapter) => _configs[adapter];
}
