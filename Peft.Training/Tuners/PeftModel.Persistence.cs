using Peft.Training.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners;

public sealed partial class PeftModel
{
    public const string ConfigFileName = "adapter_config.json";
    public const string WeightsFileName = "adapter_model.safetensors";

    /// <summary>
    /// Saves adapters in the Hugging Face PEFT layout: "default" in <paramref name="dir"/>, any other adapter in
    /// <c>dir/&lt;name&gt;/</c>; each gets adapter_config.json + adapter_model.safetensors, written atomically.
    /// </summary>
    public void SavePretrained(string dir, IReadOnlyList<string>? selectedAdapters = null)
    {
        foreach (var name in selectedAdapters ?? _configs.Keys.ToList())
        {
            if (!_configs.TryGetValue(name, out var cfg)) throw new ArgumentException($"adapter '{name}' not found");
            string target = name == DefaultAdapterName ? dir : Path.Combine(dir, name);
            SaveAdapter(name, cfg, target);
        }
    }

    /// <summary>The tensors <see cref="SavePretrained"/> writes for <paramref name="name"/> (the caller disposes them).</summary>
    private List<KeyValuePair<string, Tensor>> CheckpointTensors(string name)
    {
        var tensors = new List<KeyValuePair<string, Tensor>>();
        var shaping = Tuner as ICheckpointShapingTuner;
        using (torch.no_grad())
            foreach (var t in AdapterTensors(name))
                tensors.Add(new(t.CheckpointKey, shaping?.ToCheckpoint(name, t) ?? t.Parameter.detach()));
        return tensors;
    }

    /// <summary>
    /// Bytes of tensor data <see cref="SavePretrained"/> writes for adapter <paramref name="name"/> (the file adds a
    /// small JSON header). Works on a meta-device model, so a job builder can show it before any weight is read.
    /// </summary>
    public long AdapterDataBytes(string name = DefaultAdapterName)
    {
        var tensors = CheckpointTensors(name);
        try { return tensors.Sum(kv => kv.Value.numel() * kv.Value.ElementSize); }
        finally { foreach (var kv in tensors) kv.Value.Dispose(); }
    }

    private void SaveAdapter(string name, PeftConfig cfg, string target)
    {
        Directory.CreateDirectory(target);
        var tensors = CheckpointTensors(name);
        try
        {
            Safetensors.Save(Path.Combine(target, WeightsFileName), tensors);
        }
        finally
        {
            foreach (var kv in tensors) kv.Value.Dispose();
        }
        // PEFT writes inference_mode=true in saved configs, whatever the live value.
        var saved = cfg.Clone();
        saved.InferenceMode = true;
        saved.Save(Path.Combine(target, ConfigFileName));
    }

    /// <summary>Result of loading adapter weights: keys the file had but the model does not, and vice versa.</summary>
    public sealed record AdapterLoadReport(IReadOnlyList<string> UnexpectedKeys, IReadOnlyList<string> MissingKeys);

    /// <summary>Loads an adapter folder under <paramref name="name"/> (≈ <c>load_adapter</c>).</summary>
    public AdapterLoadReport LoadAdapter(string adapterDir, string name, bool isTrainable = false)
    {
        var config = PeftConfigs.Load(adapterDir);
        // PEFT refuses this too: only the encoder output is saved, so the trainable encoder cannot be rebuilt.
        if (config.IsPromptLearning && isTrainable)
            throw new ArgumentException($"{adapterDir}: cannot load a prompt-learning adapter ({config.PeftType}) as trainable; only its encoder output is saved", nameof(isTrainable));
        config.InferenceMode = !isTrainable;
        AddAdapter(name, config);
        try
        {
            string file = Path.Combine(adapterDir, WeightsFileName);
            if (!File.Exists(file)) throw new PeftUserException($"{file}: adapter weights not found", UserErrorKind.NotFound);
            return LoadAdapterWeights(name, file);
        }
        catch
        {
            DeleteAdapter(name);
            throw;
        }
    }

    /// <summary>Copies tensors of a safetensors file into an existing adapter, checking every shape first.</summary>
    public AdapterLoadReport LoadAdapterWeights(string name, string file)
    {
        (Tuner as ICheckpointShapingTuner)?.PrepareForLoad(name);
        var targets = AdapterTensors(name).ToDictionary(t => t.CheckpointKey, t => t.Parameter);
        using var st = SafetensorsFile.Open(file);
        var unexpected = new List<string>();
        var plan = new List<(string Key, TorchSharp.Modules.Parameter Param)>();
        foreach (var e in st.Entries)
        {
            if (!targets.TryGetValue(e.Name, out var p)) { unexpected.Add(e.Name); continue; }
            if (!e.Shape.SequenceEqual(p.shape))
                throw new AdapterLoadException(
                    $"{file}: tensor '{e.Name}' has shape [{string.Join(", ", e.Shape)}] but the model expects [{string.Join(", ", p.shape)}]; was the adapter trained on a different base model?");
            plan.Add((e.Name, p));
        }
        if (plan.Count == 0)
            throw new AdapterLoadException($"{file}: none of its tensors belongs to this model's adapter '{name}' (first key: '{st.Entries.FirstOrDefault()?.Name}')");
        using (torch.no_grad())
            foreach (var (key, p) in plan)
            {
                using var t = st.Load(key, p.device, p.dtype);
                p.copy_(t);
            }
        var missing = targets.Keys.Except(plan.Select(x => x.Key)).ToList();
        return new AdapterLoadReport(unexpected, missing);
    }
}

/// <summary>An adapter folder that cannot be loaded on this model (missing files, shapes or modules that do not match).</summary>
public sealed class AdapterLoadException(string message, UserErrorKind kind = UserErrorKind.Invalid) : PeftUserException(message, kind);
