using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Nn;

/// <summary>
/// The random generator a model's dropout draws from. Each <see cref="Models.PretrainedModel"/> owns one
/// (<see cref="Models.PretrainedModel.Random"/>); modules keep a reference to it from construction, and a training run
/// points it at the run's own seeded generator, so concurrent runs never share torch's process-global generator.
/// With no generator set, dropout uses torch's default generator (as PyTorch does).
/// </summary>
public sealed class RandomSource
{
    /// <summary>The generator dropout masks are drawn from; null = torch's global generator.</summary>
    public Generator? Generator { get; set; }

    /// <summary>Snapshot of the generator state (for a checkpointed block's recompute and for resume).</summary>
    public Tensor GetState() => Generator is { } g ? g.get_state() : torch.random.get_rng_state();

    public void SetState(Tensor state)
    {
        if (Generator is { } g) g.set_state(state);
        else torch.random.set_rng_state(state);
    }
}

/// <summary>Inverted dropout (<c>torch.nn.functional.dropout</c>) drawing its mask from a <see cref="RandomSource"/>.</summary>
public static class SeededDropout
{
    public static Tensor Apply(Tensor x, double p, bool training, RandomSource? random)
    {
        if (!training || p <= 0) return x;
        if (random?.Generator is not { } gen) return nn.functional.dropout(x, p, true);
        if (p >= 1) return x.mul(0);
        using var keep = torch.empty_like(x).bernoulli_(1 - p, gen);
        return x.mul(keep).div_(1 - p);
    }
}
