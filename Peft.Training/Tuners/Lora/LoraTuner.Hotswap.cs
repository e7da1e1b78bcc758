using Peft.Training.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.Lora;

public sealed partial class LoraTuner
{
    /// <summary>Pads every layer of <paramref name="adapter"/> to <paramref name="targetRank"/> (see <see cref="LoraLayer.PadRank"/>).</summary>
    public void PrepareForHotswap(string adapter, int targetRank)
    {
        if (!_configs.ContainsKey(adapter)) throw new ArgumentException($"adapter '{adapter}' not found");
        foreach (var (_, l) in _layers)
            if (l.Has(adapter)) l.PadRank(adapter, targetRank);
    }

    /// <summary>
    /// Replaces the weights of a loaded adapter with those of another LoRA adapter file, in place where shapes allow
    /// (PEFT's <c>hotswap_adapter</c>). Everything is validated before any tensor changes.
    /// </summary>
    public void Hotswap(string adapter, LoraConfig newConfig, SafetensorsFile file)
    {
        if (!_configs.TryGetValue(adapter, out var old)) throw new ArgumentException($"adapter '{adapter}' not found");
        if (old.UseDora || newConfig.UseDora) throw new PeftUserException("hot-swapping DoRA adapters is not supported");
        if (old.UseRslora != newConfig.UseRslora) throw new PeftConfigException($"cannot hot-swap: use_rslora differs ({old.UseRslora} → {newConfig.UseRslora})");
        if (old.LoraDropout != newConfig.LoraDropout) throw new PeftConfigException($"cannot hot-swap: lora_dropout differs ({old.LoraDropout} → {newConfig.LoraDropout})");
        if (old.LoraBias != newConfig.LoraBias) throw new PeftConfigException("cannot hot-swap: lora_bias differs");

        var byPrefix = _layers.Where(l => l.Layer.Has(adapter)).ToDictionary(l => $"base_model.model.{l.Path}.", l => l);
        var plan = new Dictionary<string, (Tensor? A, Tensor? B)>();
        foreach (var e in file.Entries)
        {
            string? suffix = e.Name.EndsWith(".lora_A.weight", StringComparison.Ordinal) ? ".lora_A.weight"
                : e.Name.EndsWith(".lora_B.weight", StringComparison.Ordinal) ? ".lora_B.weight"
                : e.Name.EndsWith(".lora_embedding_A", StringComparison.Ordinal) ? ".lora_embedding_A"
                : e.Name.EndsWith(".lora_embedding_B", StringComparison.Ordinal) ? ".lora_embedding_B" : null;
            if (suffix is null) throw new PeftConfigException($"{file.Path}: cannot hot-swap tensor '{e.Name}' (only LoRA A/B weights can be swapped)");
            string prefix = e.Name[..^suffix.Length] + ".";
            if (!byPrefix.TryGetValue(prefix, out var target))
                throw new PeftConfigException($"{file.Path}: cannot hot-swap: '{e.Name}' targets a module the loaded adapter '{adapter}' does not adapt");
            var (a, b) = target.Layer.Factors(adapter);
            bool isA = suffix.Contains("_A");
            long otherDim = isA ? a.shape[1] : b.shape[0];
            long fileOther = isA ? e.Shape[1] : e.Shape[0];
            if (e.Shape.Length != 2 || fileOther != otherDim)
                throw new PeftConfigException($"{file.Path}: tensor '{e.Name}' has shape [{string.Join(", ", e.Shape)}], incompatible with the layer");
            plan.TryGetValue(prefix, out var entry);
            var t = file.Load(e.Name, a.device, a.dtype);
            plan[prefix] = isA ? (t, entry.B) : (entry.A, t);
        }
        foreach (var (prefix, (a, b)) in plan)
        {
            if (a is null || b is null) throw new PeftConfigException($"{file.Path}: module '{prefix.TrimEnd('.')}' has only one of lora_A / lora_B");
            if (a.shape[0] != b.shape[1]) throw new PeftConfigException($"{file.Path}: module '{prefix.TrimEnd('.')}' has rank {a.shape[0]} in lora_A but {b.shape[1]} in lora_B");
        }

        foreach (var (prefix, (path, layer)) in byPrefix)
        {
            int r = (int)(TargetMatching.PatternValue(newConfig.RankPattern, path) ?? newConfig.R);
            double alpha = TargetMatching.PatternValue(newConfig.AlphaPattern, path) ?? newConfig.LoraAlpha;
            var settings = new LoraAdapterSettings(r, alpha, old.LoraDropout, newConfig.UseRslora, false, newConfig.LoraBias);
            if (plan.TryGetValue(prefix, out var t)) layer.Swap(adapter, t.A, t.B, settings);
            else layer.Swap(adapter, null, null, settings);
        }
        foreach (var (a, b) in plan.Values) { a?.Dispose(); b?.Dispose(); }
        newConfig.TargetModules = old.TargetModules;
        _configs[adapter] = newConfig;
    }
}
