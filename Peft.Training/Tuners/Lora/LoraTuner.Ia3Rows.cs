using Peft.Training.Nn;
using Peft.Training.Tuners.Ia3;

namespace Peft.Training.Tuners.Lora;

/// <summary>
/// A serving model (<see cref="PeftModel.ForServing"/>) also takes IA³ adapters, kept per layer next to the LoRA
/// factors (<see cref="LoraLayer"/>'s IA³ rows), so IA³ requests share the running batch with LoRA ones. They act in
/// mixed-batch forwards only; checkpoint keys are PEFT's (<c>….ia3_l</c>), so the adapter files load unchanged.
/// </summary>
public sealed partial class LoraTuner
{
    private readonly Dictionary<string, Ia3Config> _ia3Rows = new(StringComparer.Ordinal);

    private void AddIa3Rows(string name, Ia3Config cfg)
    {
        Ia3Tuner.FillDefaults(cfg, Base.ModelType);
        cfg.Validate();
        var matched = MatchTargets<LinearLayer>(cfg.TargetModules!, cfg.ExcludeModules, null, null, cfg.EffectiveModulesToSave, "Linear and Conv1D layers");
        foreach (var (path, host) in matched)
            LayerFor(path, host, () => new LoraLayer(host, Base.Dropout)).AddIa3(name, cfg.IsFeedforward(path));
        cfg.FanInFanOut = matched[0].Host.FanInFanOut;
        _ia3Rows[name] = cfg;
    }

    public override void DeleteAdapter(string name)
    {
        base.DeleteAdapter(name);
        _ia3Rows.Remove(name);
    }
}
