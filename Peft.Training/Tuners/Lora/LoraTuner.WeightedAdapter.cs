using Peft.Training.Nn;
using TorchSharp;

namespace Peft.Training.Tuners.Lora;

public sealed partial class LoraTuner
{
    /// <summary>
    /// Config of a combined adapter, as PEFT builds it: a copy of the first source's config with
    /// r = lora_alpha = new rank (scaling 1, which <see cref="AdapterCombination.Combine"/> assumes), the union of
    /// the target modules and empty rank/alpha patterns.
    /// </summary>
    internal LoraConfig WeightedAdapterConfig(IReadOnlyList<string> adapters, CombinationType type, int? svdRank)
    {
        var sources = adapters.Select(a => _configs[a]).ToList();
        for (int i = 0; i < sources.Count; i++)
        {
            // DoRA's magnitude vector and lora_B biases have no combination rule; combining A/B alone would be wrong.
            if (sources[i].UseDora)
                throw new PeftConfigException($"adapter '{adapters[i]}' uses DoRA; only plain LoRA adapters can be combined");
            if (sources[i].LoraBias)
                throw new PeftConfigException($"adapter '{adapters[i]}' uses lora_bias; only plain LoRA adapters can be combined");
        }
        // The new adapter gets fresh copies of modules_to_save, so the sources must agree on them (PEFT checks too).
        if (sources.Select(c => string.Join("\n", c.ModulesToSave ?? [])).Distinct().Count() > 1)
            throw new PeftConfigException("all adapters must have the same modules_to_save to be combined");

        int newRank = AdapterCombination.NewRank(sources.Select(c => c.R).ToList(), type, svdRank);
        var cfg = (LoraConfig)sources[0].Clone();
        cfg.R = newRank;
        cfg.LoraAlpha = newRank;
        cfg.TargetModules = UnionOfTargets(sources);
        cfg.RankPattern = new();
        cfg.AlphaPattern = new();
        // Deviations from PEFT HEAD, both for correctness: rsLoRA would scale by √r instead of 1 (fixed upstream
        // later), and PiSSA/OLoRA init would rewrite the base weights although the factors are overwritten anyway.
        cfg.UseRslora = false;
        cfg.InitLoraWeights = System.Text.Json.Nodes.JsonValue.Create(true);
        return cfg;
    }

    private static StringOrList UnionOfTargets(IReadOnlyList<LoraConfig> sources)
    {
        var targets = sources.Select(c => c.TargetModules).ToList();
        if (targets.All(t => t?.Items is not null))
            return new StringOrList(null, targets.SelectMany(t => t!.Items!).Distinct().ToList());
        if (targets.All(t => t?.Pattern is not null))
            return string.Join("|", targets.Select(t => $"({t!.Pattern})"));
        throw new PeftConfigException("cannot combine adapters whose target_modules mix lists and regex strings");
    }

    /// <summary>
    /// Fills the (already added) adapter <paramref name="newName"/> on every layer. Like PEFT, a layer uses only
    /// the source adapters it carries; the result is zero-padded up to the new rank (cat of a subset, small ΔW).
    /// </summary>
    internal void CombineInto(string newName, IReadOnlyList<string> adapters, IReadOnlyList<double> weights,
        CombinationType type, CombineOptions options)
    {
        using var noGrad = torch.no_grad();
        foreach (var (path, layer) in _layers)
        {
            bool hasSource = adapters.Any(layer.Has);
            if (!layer.Has(newName))
            {
                if (hasSource)
                    throw new PeftConfigException($"module '{path}' carries a source adapter but is not selected by the combined config " +
                        "(the adapters use different layers_to_transform / layers_pattern / exclude_modules)");
                continue;
            }
            var (newA, newB) = layer.Factors(newName);
            newA.zero_();
            newB.zero_();
            // PEFT raises here; a module selected only by the target union but lacking every source simply stays zero.
            if (!hasSource) continue;

            using var scope = torch.NewDisposeScope();
            var present = Enumerable.Range(0, adapters.Count).Where(i => layer.Has(adapters[i])).ToList();
            var sources = present.Select(i =>
            {
                var (a, b) = layer.Factors(adapters[i]);
                return new LoraFactors(a, b, layer.Settings[adapters[i]].Scaling);
            }).ToList();
            // Embedding ΔW is stored transposed, like Conv1D: mirror PEFT's layout for DARE's random draws.
            bool transposed = layer.IsEmbedding || ((LinearLayer)layer.Host).FanInFanOut;
            var (ca, cb) = AdapterCombination.Combine(sources, present.Select(i => weights[i]).ToList(), type,
                options with { FanInFanOut = transposed });
            long k = ca.shape[0];
            if (k > newA.shape[0])
                throw new ArgumentException($"module '{path}': combined rank {k} exceeds the new adapter's r={newA.shape[0]} (rank_pattern sources?)");
            newA.narrow(0, 0, k).copy_(ca);
            newB.narrow(1, 0, k).copy_(cb);
        }
    }
}
