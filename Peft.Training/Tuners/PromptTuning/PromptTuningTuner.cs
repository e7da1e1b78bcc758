using Peft.Training.Tuners.PromptLearning;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.PromptTuning;

public sealed class PromptTuningMethod : IPeftMethod
{
    public string PeftType => "PROMPT_TUNING";
    public ITuner CreateTuner(PeftModel model) => new PromptTuningTuner(model);
}

/// <summary>Prompt tuning: a trainable table of virtual-token embeddings prepended to the input embeddings.</summary>
public sealed class PromptTuningTuner(PeftModel owner) : PrependedPromptTuner(owner)
{
    protected override string MethodName => "prompt tuning";

    protected override VirtualTokenEncoder CreateEncoder(PromptLearningConfig config, Device device, Generator? gen) =>
        new PromptEmbedding((PromptTuningConfig)config, Base, gen);
}
