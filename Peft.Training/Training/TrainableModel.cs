using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Nn;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Training;

/// <summary>
/// What the trainer updates: the active adapter of a <see cref="PeftModel"/>, or every parameter of a plain
/// <see cref="PretrainedModel"/> (full fine-tuning / pretraining). Knows how to save and reload its weights.
/// </summary>
public sealed class TrainableModel
{
    private TrainableModel(PretrainedModel model, PeftModel? peft)
    {
        Model = model;
        Peft = peft;
    }

    public PretrainedModel Model { get; }
    public PeftModel? Peft { get; }
    public bool IsFullFineTune => Peft is null;

    /// <summary>Trains the active adapter (the base stays frozen).</summary>
    public static TrainableModel ForAdapter(PeftModel peft)
    {
        if (peft.ActiveConfig.InferenceMode)
            throw new InvalidOperationException($"adapter '{peft.ActiveAdapter}' was loaded for inference; load it with isTrainable: true to train it");
        return new TrainableModel(peft.BaseModel, peft);
    }

    /// <summary>Trains every parameter of <paramref name="model"/> (tied weights once).</summary>
    public static TrainableModel ForFullFineTune(PretrainedModel model)
    {
        foreach (var (_, p) in model.named_parameters()) p.requires_grad = true;
        return new TrainableModel(model, null);
    }

    /// <summary>
    /// Trains only the task head (<c>classifier</c>, <c>score</c> or <c>qa_outputs</c>) on a frozen base, the linear-probe
    /// baseline of the PEFT papers. Saved like a full fine-tune: a complete model folder.
    /// </summary>
    public static TrainableModel ForHeadOnly(PretrainedModel model)
    {
        var heads = TaskHeads.ModuleNames(model.Task);
        bool any = false;
        foreach (var (name, p) in model.named_parameters())
        {
            bool head = heads.Any(h => name.StartsWith(h + ".", StringComparison.Ordinal));
            p.requires_grad = head;
            any |= head;
        }
        if (!any)
            throw new PeftUserException($"a {model.Task.ToPeftString()} model has no task head to train alone (load it with a classification or QA head)");
        return new TrainableModel(model, null);
    }

    /// <summary>Wraps a loaded model (and adapter) for <see cref="Evaluation.Run"/> without touching what is trainable.</summary>
    public static TrainableModel ForEvaluation(PretrainedModel model, PeftModel? peft) => new(peft?.BaseModel ?? model, peft);

    /// <summary>Trainable tensors with their checkpoint keys (adapter file keys, or HF state-dict names).</summary>
    public IReadOnlyList<NamedParameter> Parameters()
    {
        var trainable = Model.UniqueNamedParameters().Where(p => p.Param.requires_grad);
        if (Peft is not { } peft) return trainable.Select(p => new NamedParameter(p.Name, p.Param)).ToList();
        // Saved tensors go by their checkpoint key (stable across runs, used by LoRA+ and the optimizer state);
        // trainable parameters that are not saved as such (a P-tuning / prefix-projection encoder) by their own name.
        var keys = peft.AdapterTensors(peft.ActiveAdapter).GroupBy(t => t.Parameter.Handle).ToDictionary(g => g.Key, g => g.First().CheckpointKey);
        return trainable.Select(p => new NamedParameter(keys.TryGetValue(p.Param.Handle, out var key) ? key : p.Name, p.Param)).ToList();
    }

    /// <summary>Training hooks of the tuner (AdaLoRA's regulariser and rank allocation), if it has any.</summary>
    public ITrainingAwareTuner? Hooks => HooksOverride ?? Peft?.Tuner as ITrainingAwareTuner;

    /// <summary>Test seam: hooks to use instead of the tuner's.</summary>
    internal ITrainingAwareTuner? HooksOverride { get; set; }

    /// <summary>Virtual tokens the tuner prepends (their label positions are ignored).</summary>
    public int VirtualTokens => (Peft?.Tuner as IVirtualTokenTuner)?.VirtualTokensPrepended ?? 0;

    public ModelOutput Forward(ForwardArgs args) => Peft is { } p ? p.Forward(args) : Model.Forward(args);

    /// <summary>Module containing every parameter (for train/eval mode switches).</summary>
    public nn.Module Root => Model;

    /// <summary>Writes the adapter (HF PEFT layout) or the full model (config.json + model.safetensors).</summary>
    public void Save(string dir)
    {
        if (Peft is { } peft)
        {
            peft.SavePretrained(dir, [peft.ActiveAdapter]);
            if (peft.ActiveAdapter != PeftModel.DefaultAdapterName)
            {
                // A named adapter is written into dir/<name>/; checkpoints keep it at the top for a uniform layout.
                string sub = Path.Combine(dir, peft.ActiveAdapter);
                foreach (var f in Directory.GetFiles(sub)) File.Move(f, Path.Combine(dir, Path.GetFileName(f)), true);
                Directory.Delete(sub);
            }
        }
        else
        {
            Model.SavePretrained(dir);
        }
    }

    /// <summary>Files <see cref="Save"/> writes (checked when validating a checkpoint).</summary>
    public IReadOnlyList<string> SavedFiles => Peft is null
        ? ["config.json", CheckpointReader.SingleFileName]
        : [PeftModel.ConfigFileName, PeftModel.WeightsFileName];

    /// <summary>Loads weights written by <see cref="Save"/> back into the live tensors.</summary>
    public void Load(string dir)
    {
        if (Peft is { } peft)
        {
            var report = peft.LoadAdapterWeights(peft.ActiveAdapter, Path.Combine(dir, PeftModel.WeightsFileName));
            if (report.MissingKeys.Count > 0)
                throw new PeftUserException($"{dir}: the checkpoint lacks adapter tensors ({string.Join(", ", report.MissingKeys.Take(3))} ...); was it written for another adapter config?", UserErrorKind.Invalid);
        }
        else
        {
            using var reader = CheckpointReader.OpenFolder(dir);
            Model.LoadWeights(reader, dir);
        }
    }

    public string Describe()
    {
        long trainable = Parameters().Sum(p => p.Parameter.numel());
        long all = Model.UniqueNamedParameters().Sum(p => p.Param.dtype == ScalarType.Byte ? p.Param.numel() * 2 : p.Param.numel());
        return PeftModel.FormatSummary(trainable, all);
    }

    /// <summary>Whether a parameter is an embedding-table LoRA factor (LoRA+ gives those their own learning rate).</summary>
    internal static bool IsLoraEmbedding(string key) => key.Contains(".lora_embedding_", StringComparison.Ordinal);

    internal static bool IsLoraB(string key) => key.Contains(".lora_B.", StringComparison.Ordinal) || key.Contains(".lora_embedding_B", StringComparison.Ordinal);

    /// <summary>transformers' decay rule: no decay for biases and normalisation weights.</summary>
    internal bool Decays(NamedParameter p)
    {
        string n = p.Name;
        if (n.EndsWith("bias", StringComparison.Ordinal)) return false;
        if (Peft is null)
        {
            _normParameters ??= Model.named_modules().Where(m => m.module is RmsNorm or LayerNormLayer)
                .SelectMany(m => m.module.parameters()).Select(q => q.Handle).ToHashSet();
            return !_normParameters.Contains(p.Parameter.Handle);
        }
        return p.Parameter.dim() > 1 || !n.Contains("norm", StringComparison.OrdinalIgnoreCase);
    }

    private HashSet<IntPtr>? _normParameters;
}
