using Peft.Training.Tuners.Lora;

namespace Peft.Training.Tuners;

public sealed partial class PeftModel
{
    /// <summary>
    /// Combines existing LoRA adapters into a new one (≈ <c>add_weighted_adapter</c>). The new adapter is added but
    /// not activated; it can be saved like any other. <paramref name="combinationType"/> is PEFT's snake_case name
    /// ("linear", "cat", "svd", "ties", "dare_linear", "dare_ties", "magnitude_prune" and the *_svd variants).
    /// </summary>
    public void AddWeightedAdapter(IReadOnlyList<string> adapters, IReadOnlyList<double> weights, string newName,
        string combinationType, int? svdRank = null, double? density = null, double? svdClamp = null,
        MajoritySignMethod majoritySign = MajoritySignMethod.Total)
    {
        if (Tuner is not LoraTuner lora)
            throw new PeftConfigException($"add_weighted_adapter supports LoRA adapters only; this model holds {PeftType} adapters");
        if (adapters.Count == 0) throw new ArgumentException("add_weighted_adapter needs at least one source adapter");
        foreach (var a in adapters)
            if (!_configs.ContainsKey(a)) throw new ArgumentException($"adapter '{a}' not found (available: {string.Join(", ", _configs.Keys)})");
        if (weights.Count != adapters.Count)
            throw new ArgumentException($"got {weights.Count} weights for {adapters.Count} adapters; they must match");
        // PEFT decides the type once per call: a single source always uses "linear".
        var type = AdapterCombination.ForAdapterCount(AdapterCombination.Parse(combinationType), adapters.Count);
        if (AdapterCombination.NeedsDensity(type) && density is null)
            throw new ArgumentException($"combination type '{AdapterCombination.ToName(type)}' requires a density");
        if (density is { } d && !(d > 0 && d <= 1)) throw new ArgumentException($"density must be in (0, 1], got {d}");
        if (svdRank is <= 0) throw new ArgumentException($"svd_rank must be positive, got {svdRank}");

        var config = lora.WeightedAdapterConfig(adapters, type, svdRank);
        AddAdapter(newName, config);
        try
        {
            var options = new CombineOptions(SvdRank: config.R, SvdClamp: svdClamp, Density: density,
                MajoritySign: majoritySign, Generator: Generator);
            lora.CombineInto(newName, adapters, weights, type, options);
        }
        catch
        {
            DeleteAdapter(newName);
            throw;
        }
    }
}
