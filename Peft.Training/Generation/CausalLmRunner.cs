using Peft.Training.Models;
using Peft.Training.Tuners;

namespace Peft.Training.Generation;

/// <summary>
/// What generation needs from a model (decoder-only or, despite the name, encoder-decoder): the model (config,
/// device, layer counts) and a forward pass.
/// Per-row adapter names are a forward argument rather than runner state because beam search repeats them per beam.
/// </summary>
public interface ICausalLmRunner
{
    PretrainedModel Model { get; }

    /// <summary>One forward pass; <paramref name="rowAdapterNames"/> = one adapter per batch row, or null.</summary>
    ModelOutput Forward(ForwardArgs args, IReadOnlyList<string>? rowAdapterNames);
}

/// <summary>Runs a plain model.</summary>
public sealed class ModelRunner(PretrainedModel model) : ICausalLmRunner
{
    public PretrainedModel Model { get; } = model;

    public ModelOutput Forward(ForwardArgs args, IReadOnlyList<string>? rowAdapterNames)
    {
        if (rowAdapterNames is not null)
            throw new ArgumentException("AdapterNames needs a PeftModel; this is a plain model");
        return Model.Forward(args);
    }
}

/// <summary>Runs a <see cref="PeftModel"/> with its active adapters, or per-row adapters (mixed batch).</summary>
public sealed class PeftModelRunner(PeftModel peft) : ICausalLmRunner
{
    public PeftModel Peft { get; } = peft;
    public PretrainedModel Model => Peft.BaseModel;

    public ModelOutput Forward(ForwardArgs args, IReadOnlyList<string>? rowAdapterNames) => Peft.Forward(args, rowAdapterNames);
}
