using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Nn;

/// <summary>
/// Where one model's dropout masks come from. Every module of a model shares its source, so a training run that owns
/// a generator sets <see cref="Generator"/> once and all of the model's dropout draws from it (reproducible, and
/// independent of other runs in the process). Null = the process-global RNG, as in PyTorch.
/// </summary>
public sealed class DropoutSource
{
    public Generator? Generator { get; set; }

    /// <summary>
    /// <c>nn.functional.dropout(x, p, training)</c>: each element zeroed with probability <paramref name="p"/>, the rest
    /// scaled by 1/(1−p). Returns <paramref name="x"/> itself when off (eval mode or p = 0), so inference pays nothing.
    /// </summary>
    public Tensor Apply(Tensor x, double p, bool training)
    {
        if (!training || p <= 0) return x;
        if (p >= 1)
        {
            // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
            using Scalar zero = 0;
            return x * zero;
        }
        if (Generator is not { } gen) return nn.functional.dropout(x, p, true);
        using var scope = torch.NewDisposeScope();
        var keep = torch.empty_like(x).bernoulli_(1 - p, gen);
        using Scalar keepProb = 1 - p;
        return (x * keep / keepProb).MoveToOuterDisposeScope();
    }

    /// <summary>The generator's state (null without one), saved so a checkpointed recompute redraws the same masks.</summary>
    internal byte[]? SaveState()
    {
        if (Generator is not { } gen) return null;
        using var state = gen.get_state();
        return state.data<byte>().ToArray();
    }

    internal void RestoreState(byte[]? state)
    {
        if (state is not { Length: > 0 } || Generator is not { } gen) return;
        using var t = torch.tensor(state);
        gen.set_state(t);
    }
}
