using Peft.Training.Tuners.PromptLearning;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.PTuning;

public sealed class PTuningMethod : IPeftMethod
{
    public string PeftType => "P_TUNING";
    public ITuner CreateTuner(PeftModel model) => new PTuningTuner(model);
}

/// <summary>P-tuning: like prompt tuning, but the prepended embeddings come out of an MLP/LSTM prompt encoder.</summary>
public sealed class PTuningTuner(PeftModel owner) : PrependedPromptTuner(owner)
{
    protected override string MethodName => "P-tuning";

    protected override VirtualTokenEncoder CreateEncoder(PromptLearningConfig config, Device device, Generator? gen) =>
        new PromptEncoder((PromptEncoderConfig)config, device, gen);
}
