using Peft.Training.Models;
using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.AdaLora;

public sealed class AdaLoraMethod : IPeftMethod
{
    public string PeftType => "ADALORA";
    public ITuner CreateTuner(PeftModel model) => new AdaLoraTuner(model);
}

/// <summary>
/// PEFT's <c>AdaLoraModel</c>: SVD-form adapters on targeted Linear/Conv1D layers plus the rank allocator of the single
/// trainable adapter. As an <see cref="ITrainingAwareTuner"/> the trainer adds the orthogonal regulariser and calls
/// <see cref="UpdateAndAllocate"/> after every optimizer step (PEFT leaves both to the user).
/// </summary>
public sealed class AdaLoraTuner(PeftModel owner) : LayerTuner<AdaLoraLayer, AdaLoraConfig>(owner), ITrainingAwareTuner, ICheckpointShapingTuner
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

    private RankAllocator? _allocator;

    protected override string MethodName => "AdaLoRA";

    /// <summary>The adapter whose ranks are allocated (the one added with inference_mode false), if any.</summary>
    public string? TrainableAdapter { get; private set; }

    public override void AddAdapter(string name, PeftConfig config)
    {
        var cfg = (AdaLoraConfig)config;
        cfg.Validate();
        if (!cfg.InferenceMode && TrainableAdapter is { } other && other != name)
            throw new PeftConfigException(
                $"AdaLoRA supports only one trainable adapter ('{other}' already is); set inference_mode=true for adapter '{name}'");
        var targets = cfg.TargetModules ?? StringOrList.Of(DefaultTargets.For(DefaultTargetModules, Base.ModelType, "AdaLoRA"));
        var matched = MatchTargets<LinearLayer>(targets, cfg.ExcludeModules, cfg.LayersToTransform, cfg.LayersPattern, cfg.EffectiveModulesToSave, "Linear and Conv1D layers");
        foreach (var (path, host) in matched)
        {
            var layer = LayerFor(path, host, () => new AdaLoraLayer(host, Base.Dropout));
            // Always init_r here, even with a rank_pattern: PEFT only shrinks modules when a checkpoint is loaded.
            layer.AddAdapter(name, cfg.InitR, cfg.LoraAlpha, cfg.LoraDropout, cfg.InitWeights, _owner.Generator);
        }
        cfg.FanInFanOut = matched[0].Host.FanInFanOut;
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

    public override void DeleteAdapter(string name)
    {
        base.DeleteAdapter(name);
        if (TrainableAdapter == name) SetTrainable(null);
    }

    public override IEnumerable<AdapterTensor> AdapterTensors(string adapter)
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

    public override void Unload(bool merge, IReadOnlyList<string>? adapters, bool safe)
    {
        base.Unload(merge, adapters, safe);
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
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar terms = count, weight = _configs[adapter].OrthRegWeight;
        return (sum / terms * weight).MoveToOuterDisposeScope();
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
