using Peft.Training.Models;
using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.AdaLora;

public sealed class AdaLoraMethod : IPeftMethod
{
    public string PeftType => "ADALORA";
    public PeftConfig CreateConfig() => new AdaLoraConfig();
    public ITuner CreateTuner(PeftModel model) => new AdaLoraTuner(model);
}

/// <summary>
/// PEFT's <c>AdaLoraModel</c>: SVD-form adapters on targeted Linear/Conv1D layers plus the rank allocator of the single
/// trainable adapter. As an <see cref="ITrainingAwareTuner"/> the trainer adds the orthogonal regulariser and calls
/// <see cref="UpdateAndAllocate"/> after every optimizer step (PEFT leaves both to the user).
/// </summary>
public sealed class AdaLoraTuner : ITuner, ITrainingAwareTuner, ICheckpointShapingTuner
{
    /// <summary>PEFT 0.10's AdaLoRA default targets per model_type (they differ from LoRA's).</summary>
    public static readonly IReadOnlyDictionary<string, string[]> DefaultTargetModules = new Dictionary<string, string[]>
    {
        ["t5"] = ["q", "k", "v", "o", "wi", "wo"], ["mt5"] = ["q", "k", "v", "o", "wi_0", "wi_1", "wo"],
        ["bart"] = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"], ["gpt2"] = ["c_attn"],
        ["bloom"] = ["query_key_value"], ["opt"] = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
        ["gptj"] = ["q_proj", "v_proj"], ["gpt_neox"] = ["query_key_value"], ["gpt_neo"] = ["q_proj", "v_proj"],
        ["llama"] = ["q_proj", "v_proj"], ["bert"] = ["query", "value"], ["roberta"] = ["query", "key", "value", "dense"],
        ["deberta-v2"] = ["query_proj", "key_proj", "value_proj", "dense"], ["gpt_bigcode"] = ["c_attn"],
        ["deberta"] = ["in_proj"], ["layoutlm"] = ["query", "value"],
    };

    private readonly PeftModel _owner;
    private readonly List<(string Path, AdaLoraLayer Layer)> _layers = new();
    private readonly Dictionary<string, AdaLoraConfig> _configs = new();
    private RankAllocator? _allocator;

    public AdaLoraTuner(PeftModel owner) => _owner = owner;

    private PretrainedModel Base => _owner.BaseModel;

    public IReadOnlyList<(string Path, AdaLoraLayer Layer)> Layers => _layers;

    /// <summary>The adapter whose ranks are allocated (the one added with inference_mode false), if any.</summary>
    public string? TrainableAdapter { get; private set; }

    public void AddAdapter(string name, PeftConfig config)
    {
        var cfg = (AdaLoraConfig)config;
        cfg.Validate();
        if (!cfg.InferenceMode && TrainableAdapter is { } other && other != name)
            throw new PeftConfigException(
                $"AdaLoRA supports only one trainable adapter ('{other}' already is); set inference_mode=true for adapter '{name}'");
        var targets = cfg.TargetModules ?? StringOrList.Of(DefaultTargets.For(DefaultTargetModules, Base.ModelType, "AdaLoRA"));
        var matched = new List<(string, LinearLayer)>();
        foreach (var (path, module) in Base.named_modules())
        {
            if (string.IsNullOrEmpty(path) || TargetMatching.IsAdapterInternal(path)) continue;
            if (TargetMatching.IsUnderModulesToSave(path, cfg.ModulesToSave)) continue;
            if (!TargetMatching.IsTargeted(path, targets, cfg.ExcludeModules, cfg.LayersToTransform, cfg.LayersPattern)) continue;
            if (module is LinearLayer lin) { matched.Add((path, lin)); continue; }
            if (module.children().Any()) continue; // a container matched by a regex, as PEFT skips non-leaf matches
            throw new PeftConfigException($"Target module '{path}' ({module.GetType().Name}) is not supported. AdaLoRA supports Linear and Conv1D layers.");
        }
        if (matched.Count == 0)
            throw new PeftConfigException($"Target modules {targets} not found in the base model. Please check the target modules and try again.");
        foreach (var (path, host) in matched)
        {
            if (host.Tuner is not null and not AdaLoraLayer)
                throw new PeftConfigException($"module '{path}' already carries an adapter of another type");
            if (host.Tuner is not AdaLoraLayer layer)
            {
                layer = new AdaLoraLayer(host);
                _layers.Add((path, layer));
            }
            // Always init_r here, even with a rank_pattern: PEFT only shrinks modules when a checkpoint is loaded.
            layer.AddAdapter(name, cfg.InitR, cfg.LoraAlpha, cfg.LoraDropout, cfg.InitWeights, _owner.Generator);
        }
        cfg.FanInFanOut = matched[0].Item2.FanInFanOut;
        cfg.TargetModules ??= targets;
        _configs[name] = cfg;
        if (!cfg.InferenceMode) SetTrainable(name);
    }

    private void SetTrainable(string? name)
    {
        _allocator?.Dispose();
        _allocator = null;
        TrainableAdapter = name;
    }

    public void DeleteAdapter(string name)
    {
        foreach (var (_, layer) in _layers) layer.DeleteAdapter(name);
        _configs.Remove(name);
        if (TrainableAdapter == name) SetTrainable(null);
        for (int i = _layers.Count - 1; i >= 0; i--)
        {
            if (_layers[i].Layer.Adapters.Any()) continue;
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
            yield return new(prefix + "lora_A", layer.A(adapter));
            yield return new(prefix + "lora_B", layer.B(adapter));
            yield return new(prefix + "lora_E", layer.E(adapter));
        }
        foreach (var t in BiasTensors(cfg.Bias)) yield return t;
    }

    /// <summary>bias="all": every bias of the model; "lora_only": biases of adapted layers (PEFT's key names).</summary>
    private IEnumerable<AdapterTensor> BiasTensors(string bias)
    {
        if (bias == "none") yield break;
        var hosts = _layers.Select(l => l.Path).ToHashSet();
        foreach (var (name, p) in Base.UniqueNamedParameters())
        {
            if (!(name == "bias" || name.EndsWith(".bias", StringComparison.Ordinal)) || name.Contains(".lora_")) continue;
            string owner = name.Length > 5 ? name[..^5] : "";
            bool wrapped = hosts.Contains(owner);
            if (bias == "lora_only" && !wrapped) continue;
            yield return new("base_model.model." + (wrapped ? owner + ".base_layer.bias" : name), p);
        }
    }

    /// <summary>Saves only the kept ranks: rows of A and E, columns of B (PEFT's <c>resize_state_dict_by_rank_pattern</c>).</summary>
    public Tensor ToCheckpoint(string adapter, AdapterTensor tensor)
    {
        var p = tensor.Parameter;
        var cfg = _configs[adapter];
        foreach (var (path, layer) in _layers)
        {
            if (!layer.Has(adapter) || !tensor.CheckpointKey.StartsWith($"base_model.model.{path}.lora_", StringComparison.Ordinal)) continue;
            if (cfg.RankPatternFor(path, adapter) is not { } keep || keep.Length != layer.Rank(adapter) || keep.All(k => k)) break;
            int dim = ReferenceEquals(p, layer.B(adapter)) ? 1 : 0;
            using var idx = KeptIndices(keep, p.device);
            return p.detach().index_select(dim, idx);
        }
        return p.detach();
    }

    private static Tensor KeptIndices(bool[] keep, Device device) =>
        torch.tensor(keep.Select((k, i) => (k, i)).Where(t => t.k).Select(t => (long)t.i).ToArray(), device: device);

    /// <summary>Shrinks modules to the ranks the config's rank_pattern kept; ranknum stays at init_r.</summary>
    public void PrepareForLoad(string adapter)
    {
        var cfg = _configs[adapter];
        foreach (var (path, layer) in _layers)
        {
            if (!layer.Has(adapter) || cfg.RankPatternFor(path, adapter) is not { } keep) continue;
            if (keep.Length == layer.Rank(adapter) && !keep.All(k => k)) layer.Resize(adapter, keep, cfg.LoraAlpha);
        }
    }

    public ModelOutput Forward(ForwardArgs args, IReadOnlyList<string>? rowAdapterNames)
    {
        if (rowAdapterNames is not null)
            throw new NotSupportedException("AdaLoRA does not support mixed-batch inference (adapter_names); PEFT 0.10 implements it for LoRA only. Run one forward pass per adapter instead.");
        return Base.Forward(args);
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
        SetTrainable(null);
    }

    /// <summary>
    /// orth_reg_weight × mean over every lora_A / lora_B of the trainable adapter of ‖A·Aᵀ − I‖_F resp. ‖Bᵀ·B − I‖_F
    /// (all init_r ranks, masked ones included). Null without a trainable adapter or when the weight is 0.
    /// </summary>
    public Tensor? ExtraLoss()
    {
        if (TrainableAdapter is not { } adapter || _configs[adapter].OrthRegWeight <= 0) return null;
        using var scope = torch.NewDisposeScope();
        Tensor? sum = null;
        int count = 0;
        foreach (var (_, layer) in _layers)
        {
            if (!layer.Has(adapter)) continue;
            var a = layer.A(adapter);
            var b = layer.B(adapter);
            foreach (var cov in new[] { a.matmul(a.t()), b.t().matmul(b) })
            {
                var norm = (cov - torch.eye(cov.shape[0], dtype: cov.dtype, device: cov.device)).norm();
                sum = sum is null ? norm : sum + norm;
                count++;
            }
        }
        if (sum is null) return null;
        return (sum / count * _configs[adapter].OrthRegWeight).MoveToOuterDisposeScope();
    }

    /// <summary>Runs <see cref="UpdateAndAllocate"/>; steps count from 0 as in PEFT's AdaLoRA example.</summary>
    public void OnOptimizerStep(int globalStep) => UpdateAndAllocate(globalStep);

    /// <summary>
    /// One rank-allocation step (call after the optimizer step, before gradients are zeroed): before
    /// total_step − tfinal update importance scores and mask per the budget schedule; at that step force the target
    /// budget and reset the scores; afterwards re-apply the stored pattern. The pattern is kept in the config's
    /// rank_pattern (keys "<c>path.lora_E</c>"), which saving uses to cut the pruned ranks.
    /// </summary>
    public RankAllocationStep UpdateAndAllocate(int globalStep)
    {
        if (TrainableAdapter is not { } adapter)
            throw new InvalidOperationException("UpdateAndAllocate needs a trainable AdaLoRA adapter (create it with inference_mode=false or load it with isTrainable: true)");
        var cfg = _configs[adapter];
        _allocator ??= new RankAllocator(cfg, adapter, _layers);
        int finalStep = cfg.TotalStep!.Value - cfg.Tfinal;
        if (globalStep < finalStep)
        {
            _allocator.UpdateImportance();
            var (budget, mask) = _allocator.BudgetSchedule(globalStep);
            if (mask) cfg.RankPattern = _allocator.MaskToBudget(budget);
            return new(budget, mask, RankAllocationPhase.Schedule);
        }
        if (globalStep == finalStep)
        {
            var (budget, _) = _allocator.BudgetSchedule(globalStep);
            cfg.RankPattern = _allocator.MaskToBudget(budget);
            _allocator.ResetScores();
            return new(budget, true, RankAllocationPhase.Final);
        }
        _allocator.ApplyPattern(cfg);
        return new(null, false, RankAllocationPhase.Fixed);
    }
}
