using Peft.Training.IO;
using Peft.Training.Tuners.Lora;

namespace Peft.Training.Tuners;

public sealed partial class PeftModel
{
    private LoraTuner RequireLora(string operation) =>
        Tuner as LoraTuner ?? throw new PeftUserException($"{operation} is only supported for LoRA adapters (this model holds {PeftType})");

    /// <summary>
    /// Swaps the weights of loaded adapter <paramref name="adapterName"/> for those in <paramref name="adapterDir"/> without
    /// rebuilding the model (≈ PEFT's <c>hotswap_adapter</c>). Ranks up to the current storage rank are copied in place;
    /// call <see cref="PrepareForHotswap"/> first to pad to the largest rank you will serve.
    /// </summary>
    public void HotswapAdapter(string adapterDir, string adapterName)
    {
        var tuner = RequireLora("hot-swapping");
        if (PeftConfigs.Load(adapterDir) is not LoraConfig config)
            throw new PeftConfigException($"{adapterDir}: only LoRA adapters can be hot-swapped");
        using var file = SafetensorsFile.Open(Path.Combine(adapterDir, WeightsFileName));
        tuner.Hotswap(adapterName, config, file);
        config.InferenceMode = _configs[adapterName].InferenceMode;
        config.TaskModulesToSave = _configs[adapterName].TaskModulesToSave;
        _configs[adapterName] = config;
        UpdateTrainable();
    }

    /// <summary>Zero-pads an adapter to <paramref name="targetRank"/> so later hot-swaps happen in place.</summary>
    public void PrepareForHotswap(string adapterName, int targetRank) => RequireLora("hot-swapping").PrepareForHotswap(adapterName, targetRank);
}
