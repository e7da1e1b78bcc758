using Peft.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners;

public sealed partial class PeftModel
{
    /// <summary>
    /// A base model ready to take adapters of <paramref name="peftType"/> but holding none yet (a server starts empty and
    /// attaches adapters as requests name them). The base weights are frozen.
    /// </summary>
    public static PeftModel ForServing(PretrainedModel model, string peftType)
    {
        var peft = new PeftModel(model, peftType, null) { MixesIa3Rows = peftType == "LORA", ServingOnly = true };
        peft.UpdateTrainable();
        return peft;
    }

    /// <summary>A LoRA serving model also takes IA³ adapters, for mixed-batch forwards (see LoraTuner.Ia3Rows).</summary>
    public bool MixesIa3Rows { get; private init; }

    /// <summary>Made by <see cref="ForServing"/>: inference only, every tensor frozen.</summary>
    private bool ServingOnly { get; init; }

    /// <summary>
    /// Adds an inference adapter from tensors already in memory (keys as in <c>adapter_model.safetensors</c>), so a
    /// server can read the file on another thread and only copy here. Every key must match the model in name and shape.
    /// </summary>
    public void AddAdapterFromTensors(string name, PeftConfig config, IReadOnlyDictionary<string, Tensor> weights, string source)
    {
        config.InferenceMode = true;
        AddAdapter(name, config);
        try
        {
            var targets = AdapterTensors(name).ToDictionary(t => t.CheckpointKey, t => t.Parameter);
            foreach (var (key, t) in weights)
            {
                if (!targets.TryGetValue(key, out var p))
                    throw new AdapterLoadException($"{source}: tensor '{key}' does not belong to this base model's adapter layout; was the adapter trained on a different base model?");
                if (!t.shape.SequenceEqual(p.shape))
                    throw new AdapterLoadException($"{source}: tensor '{key}' has shape [{string.Join(", ", t.shape)}] but the model expects [{string.Join(", ", p.shape)}]; was the adapter trained on a different base model?");
            }
            using var noGrad = torch.no_grad();
            foreach (var (key, t) in weights) targets[key].copy_(t);
        }
        catch
        {
            DeleteAdapter(name);
            throw;
        }
    }
}
