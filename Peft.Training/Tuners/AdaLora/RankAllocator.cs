using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.AdaLora;

/// <summary>What one <see cref="AdaLoraTuner.UpdateAndAllocate"/> call did.</summary>
/// <param name="Budget">Total rank budget for this step (null in the fixed phase after the final allocation).</param>
/// <param name="Masked">True when E entries were zeroed by a fresh allocation this step.</param>
/// <param name="Phase">Which branch of the schedule ran.</param>
public sealed record RankAllocationStep(int? Budget, bool Masked, RankAllocationPhase Phase);

public enum RankAllocationPhase
{
    /// <summary>step &lt; total_step − tfinal: importance scores updated, masked when the schedule says so.</summary>
    Schedule,
    /// <summary>step == total_step − tfinal: forced mask to the target budget, scores reset.</summary>
    Final,
    /// <summary>step &gt; total_step − tfinal: the stored rank pattern is re-applied.</summary>
    Fixed,
}

/// <summary>
/// AdaLoRA's importance-based rank allocation for the trainable adapter: smoothed sensitivity (Ī) and uncertainty (Ū)
/// per element of A, E, B; each singular triplet is scored and the lowest-scoring ones are masked (E ← 0) until the
/// cubic budget schedule is met. Masking is soft: shapes never change during training.
/// </summary>
public sealed class RankAllocator : IDisposable
{
    private readonly AdaLoraConfig _config;
    private readonly string _adapter;
    private readonly IReadOnlyList<(string Path, AdaLoraLayer Layer)> _layers;
    private readonly Dictionary<string, (Tensor Ipt, Tensor Unc)> _scores = new();

    public RankAllocator(AdaLoraConfig config, string adapter, IReadOnlyList<(string Path, AdaLoraLayer Layer)> layers)
    {
        _config = config;
        _adapter = adapter;
        _layers = layers.Where(l => l.Layer.Has(adapter)).ToList();
        InitBudget = _layers.Sum(l => l.Layer.Rank(adapter));
        TargetBudget = config.TargetR * _layers.Count;
    }

    /// <summary>Σ of the initial ranks.</summary>
    public int InitBudget { get; }
    /// <summary>target_r × number of adapted modules.</summary>
    public int TargetBudget { get; }

    /// <summary>(budget, mask now?) for a step: warm-up keeps everything, then a cubic decay to the target budget.</summary>
    public (int Budget, bool Mask) BudgetSchedule(int step)
    {
        int tinit = _config.Tinit, tfinal = _config.Tfinal, total = _config.TotalStep!.Value;
        if (step <= tinit) return (InitBudget, false);
        if (step > total - tfinal) return (TargetBudget, true);
        double c = 1 - (double)(step - tinit) / (total - tfinal - tinit);
        int budget = (int)((InitBudget - TargetBudget) * (c * c * c) + TargetBudget);
        return (budget, step % _config.DeltaT == 0);
    }

    private IEnumerable<(string Key, TorchSharp.Modules.Parameter P)> ScoredParameters()
    {
        foreach (var (path, layer) in _layers)
        {
            yield return ($"{path}.lora_A", layer.A(_adapter));
            yield return ($"{path}.lora_B", layer.B(_adapter));
            yield return ($"{path}.lora_E", layer.E(_adapter));
        }
    }

    /// <summary>ipt = |p ⊙ ∇p|; Ī ← β1·Ī + (1−β1)·ipt; Ū ← β2·Ū + (1−β2)·|ipt − Ī| (with the new Ī).</summary>
    public void UpdateImportance()
    {
        using var noGrad = torch.no_grad();
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar iptKeep = _config.Beta1, iptWeight = 1 - _config.Beta1, uncKeep = _config.Beta2, uncWeight = 1 - _config.Beta2;
        foreach (var (key, p) in ScoredParameters())
        {
            var grad = p.grad ?? throw new InvalidOperationException(
                $"AdaLoRA rank allocation needs the gradient of '{key}': call UpdateAndAllocate after backward() and before zero_grad()");
            using var scope = torch.NewDisposeScope();
            var ipt = (p * grad).abs();
            var (oldIpt, oldUnc) = _scores.TryGetValue(key, out var s) ? s : (torch.zeros_like(p), torch.zeros_like(p));
            var newIpt = oldIpt * iptKeep + ipt * iptWeight;
            var newUnc = oldUnc * uncKeep + (ipt - newIpt).abs() * uncWeight;
            _scores[key] = (newIpt.DetachFromDisposeScope(), newUnc.DetachFromDisposeScope());
            if (s.Ipt is not null) { s.Ipt.Dispose(); s.Unc.Dispose(); }
        }
    }

    private Tensor ElementScore(string key)
    {
        if (!_scores.TryGetValue(key, out var s))
            throw new InvalidOperationException($"no importance scores for '{key}' yet; the first allocation must follow a score update");
        return s.Ipt * s.Unc;
    }

    /// <summary>
    /// Masks the lowest-scoring triplets so that <paramref name="budget"/> ranks remain (ties at the threshold are
    /// masked too, as in PEFT). Returns the keep flags per "<c>path.lora_E</c>".
    /// </summary>
    public Dictionary<string, bool[]> MaskToBudget(int budget)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var triplet = new List<(string Path, AdaLoraLayer Layer, Tensor Score)>();
        foreach (var (path, layer) in _layers)
        {
            // Triplet score = E score + mean over row i of A's scores + mean over column i of B's scores.
            var a = ElementScore($"{path}.lora_A").mean([1], keepdim: true);
            var b = ElementScore($"{path}.lora_B").mean([0]).view(-1, 1);
            var ab = torch.cat([a, b], 1).sum(1);
            triplet.Add((path, layer, ElementScore($"{path}.lora_E").view(-1) + ab));
        }
        long k = InitBudget - budget;
        double threshold = double.NegativeInfinity;
        if (k > 0)
        {
            var all = torch.cat(triplet.Select(t => t.Score).ToArray(), 0);
            threshold = all.sort().Values[k - 1].item<float>();
        }
        var pattern = new Dictionary<string, bool[]>();
        using Scalar thresholdS = threshold, zero = 0.0;
        foreach (var (path, layer, score) in triplet)
        {
            var drop = score.le(thresholdS);
            layer.E(_adapter).masked_fill_(drop.view(-1, 1), zero);
            pattern[$"{path}.lora_E"] = drop.logical_not().data<bool>().ToArray();
        }
        return pattern;
    }

    /// <summary>Zeroes E wherever the stored pattern says a rank was pruned.</summary>
    public void ApplyPattern(AdaLoraConfig config)
    {
        using var noGrad = torch.no_grad();
        using Scalar zero = 0.0;
        foreach (var (path, layer) in _layers)
        {
            if (config.RankPatternFor(path, _adapter) is not { } keep) continue;
            var e = layer.E(_adapter);
            if (keep.Length != e.shape[0]) continue; // module already resized to its kept ranks
            using var mask = torch.tensor(keep.Select(x => !x).ToArray(), device: e.device).view(-1, 1);
            e.masked_fill_(mask, zero);
        }
    }

    public void ResetScores()
    {
        foreach (var (ipt, unc) in _scores.Values) { ipt.Dispose(); unc.Dispose(); }
        _scores.Clear();
    }

    public void Dispose() => ResetScores();
}
