using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Nn;

/// <summary>
/// Adapter logic attached to an <see cref="IAdaptableLayer"/> (LoRA, IA³, AdaLoRA...). The tuner registers its own
/// parameters as sub-modules of the host layer (e.g. <c>q_proj.lora_A.default.weight</c>), so the host's parameter
/// names are the in-memory names Hugging Face PEFT uses, minus the <c>base_layer</c> segment.
/// </summary>
public interface ILayerTuner
{
    /// <summary>Forward through the base layer plus the active adapters.</summary>
    Tensor Forward(Tensor x);
}

/// <summary>A base layer that a tuner can attach to (Linear, GPT-2 Conv1D, Embedding).</summary>
public interface IAdaptableLayer
{
    ILayerTuner? Tuner { get; set; }
    Tensor BaseForward(Tensor x);
    nn.Module AsModule { get; }
    TorchSharp.Modules.Parameter weight { get; }
}
