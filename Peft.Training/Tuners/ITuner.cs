using Peft.Training.Models;
using TorchSharp.Modules;

namespace Peft.Training.Tuners;

/// <summary>One adapter tensor: its key in <c>adapter_model.safetensors</c> and the live parameter.</summary>
public sealed record AdapterTensor(string CheckpointKey, Parameter Parameter);

/// <summary>
/// Model-level logic of one PEFT method (PEFT's <c>LoraModel</c>, <c>IA3Model</c> ...): injects per-layer adapters into
/// the base model and runs forward passes. A <see cref="PeftModel"/> owns exactly one tuner (one peft_type).
/// </summary>
public interface ITuner
{
    /// <summary>Adds an adapter (layers created and initialised); does not activate it.</summary>
    void AddAdapter(string name, PeftConfig config);
    void DeleteAdapter(string name);
    void SetActiveAdapters(IReadOnlyList<string> names);
    /// <summary>The tensors saved for an adapter, with checkpoint keys (adapter name removed, <c>base_model.model.</c> prefix).</summary>
    IEnumerable<AdapterTensor> AdapterTensors(string adapter);
    /// <summary>
    /// Parameters that train for an adapter: by default the saved tensors. Prompt encoders also train an MLP/LSTM head
    /// that is never saved (only its output is).
    /// </summary>
    IEnumerable<Parameter> TrainableParameters(string adapter) => AdapterTensors(adapter).Select(t => t.Parameter);
    ModelOutput Forward(ForwardArgs args, IReadOnlyList<string>? rowAdapterNames);
    bool Disabled { get; set; }
    bool CanMerge { get; }
    void Merge(IReadOnlyList<string>? adapters, bool safe);
    void Unmerge();
    /// <summary>Removes every adapter layer from the base model (optionally merging first).</summary>
    void Unload(bool merge, IReadOnlyList<string>? adapters, bool safe);
}

/// <summary>Registration of a PEFT method: its <c>peft_type</c>, config and tuner.</summary>
public interface IPeftMethod
{
    string PeftType { get; }
    ITuner CreateTuner(PeftModel model);
}

/// <summary>
/// Optional training hooks a tuner may implement; the trainer calls them for the user (PEFT users must call
/// AdaLoRA's <c>update_and_allocate</c> by hand — a common complaint).
/// </summary>
public interface ITrainingAwareTuner
{
    /// <summary>Extra loss term added to the task loss (AdaLoRA's orthogonal regulariser); null if none.</summary>
    TorchSharp.torch.Tensor? ExtraLoss();

    /// <summary>Called after each optimizer step, before gradients are zeroed (AdaLoRA reads the gradients).</summary>
    void OnOptimizerStep(int globalStep);
}

/// <summary>Tuners that prepend virtual tokens to the sequence (prompt tuning, P-tuning): labels get that many -100s.</summary>
public interface IVirtualTokenTuner
{
    int VirtualTokensPrepended { get; }
}

/// <summary>
/// Tuners whose checkpoint tensors are shaped differently from the live parameters: AdaLoRA saves only the ranks its
/// allocator kept and re-creates pruned modules before a checkpoint is copied in.
/// </summary>
public interface ICheckpointShapingTuner
{
    /// <summary>The tensor to write for <paramref name="tensor"/>; always a new tensor, which the caller disposes.</summary>
    TorchSharp.torch.Tensor ToCheckpoint(string adapter, AdapterTensor tensor);

    /// <summary>Brings the adapter's parameters to the shapes its checkpoint holds; called before weights are loaded.</summary>
    void PrepareForLoad(string adapter);
}
