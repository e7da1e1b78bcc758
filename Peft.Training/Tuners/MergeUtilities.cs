using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners;

/// <summary>How TIES elects the per-element sign: by the summed values or by counting signs.</summary>
public enum MajoritySignMethod { Total, Frequency }

/// <summary>
/// Task-vector merging primitives (task arithmetic, magnitude pruning, TIES, DARE), following PEFT's
/// <c>utils/merge_utils.py</c>. Every function takes task tensors of identical shape plus one weight per
/// task and returns a freshly allocated tensor; inputs are never modified or aliased.
/// </summary>
public static class MergeUtilities
{
    /// <summary>Σ wᵢ·Tᵢ.</summary>
    public static Tensor TaskArithmetic(IReadOnlyList<Tensor> tasks, IReadOnlyList<double> weights)
    {
        Validate(tasks, weights);
        using var scope = NewDisposeScope();
        var stacked = stack(tasks);
        return WeightedSum(stacked, weights).MoveToOuterDisposeScope();
    }

    /// <summary>Magnitude-prunes every task to its top <paramref name="density"/> fraction, then Σ wᵢ·Tᵢ.</summary>
    public static Tensor MagnitudePrune(IReadOnlyList<Tensor> tasks, IReadOnlyList<double> weights, double density)
    {
        Validate(tasks, weights);
        using var scope = NewDisposeScope();
        var stacked = stack(tasks.Select(t => Prune(t, density, "magnitude")));
        return WeightedSum(stacked, weights).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// TIES: magnitude prune → elect sign → mean over the entries that agree with the elected sign.
    /// As in PEFT, the sign is elected on the pruned but <em>unweighted</em> tasks; the weights only scale
    /// the values that are averaged. (With negative weights this differs from electing on wᵢ·Tᵢ.)
    /// </summary>
    public static Tensor Ties(IReadOnlyList<Tensor> tasks, IReadOnlyList<double> weights, double density,
        MajoritySignMethod method = MajoritySignMethod.Total)
    {
        Validate(tasks, weights);
        using var scope = NewDisposeScope();
        var stacked = stack(tasks.Select(t => Prune(t, density, "magnitude")));
        return ElectAndMerge(stacked, weights, method).MoveToOuterDisposeScope();
    }

    /// <summary>DARE: random Bernoulli(<paramref name="density"/>) drop with 1/density rescale, then Σ wᵢ·Tᵢ.</summary>
    public static Tensor DareLinear(IReadOnlyList<Tensor> tasks, IReadOnlyList<double> weights, double density,
        Generator? generator = null)
    {
        Validate(tasks, weights);
        using var scope = NewDisposeScope();
        var stacked = stack(tasks.Select(t => Prune(t, density, "random", rescale: true, generator)));
        return WeightedSum(stacked, weights).MoveToOuterDisposeScope();
    }

    /// <summary>DARE drop/rescale followed by TIES sign election and disjoint merge (sign elected before weighting).</summary>
    public static Tensor DareTies(IReadOnlyList<Tensor> tasks, IReadOnlyList<double> weights, double density,
        MajoritySignMethod method = MajoritySignMethod.Total, Generator? generator = null)
    {
        Validate(tasks, weights);
        using var scope = NewDisposeScope();
        var stacked = stack(tasks.Select(t => Prune(t, density, "random", rescale: true, generator)));
        return ElectAndMerge(stacked, weights, method).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Prunes one tensor. "magnitude" keeps the k = ⌊density·numel⌋ largest |x| (ties broken by topk);
    /// "random" keeps each entry with probability density, optionally rescaled by 1/density.
    /// density ≥ 1 returns an unpruned copy (PEFT returns the input itself; a copy keeps ownership simple).
    /// </summary>
    public static Tensor Prune(Tensor t, double density, string method, bool rescale = false, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (method is not ("magnitude" or "random"))
            throw new ArgumentException($"Unknown prune method '{method}'; expected 'magnitude' or 'random'.", nameof(method));
        if (double.IsNaN(density))
            throw new ArgumentException("Density must be a number.", nameof(density));
        if (density >= 1)
            return t.clone();
        if (density < 0)
            throw new ArgumentException($"Density should be >= 0, got {density}.", nameof(density));

        using var scope = NewDisposeScope();
        return (method == "magnitude" ? MagnitudeMask(t, density) : RandomPrune(t, density, rescale, generator))
            .MoveToOuterDisposeScope();
    }

    /// <summary>
    /// For tasks stacked on dim 0, marks entries whose sign equals the elected sign. Total: sign of Σ values;
    /// Frequency: sign of Σ signs. A zero tally elects +1; zero entries (sign 0) never count as agreeing.
    /// </summary>
    public static Tensor MajoritySignMask(Tensor stacked, MajoritySignMethod method)
    {
        ArgumentNullException.ThrowIfNull(stacked);
        using var scope = NewDisposeScope();
        var sign = stacked.sign();
        // Named `dim:` because a literal 0 would bind to sum(ScalarType?) and reduce everything.
        var tally = method switch
        {
            MajoritySignMethod.Total => stacked.sum(dim: 0),
            MajoritySignMethod.Frequency => sign.sum(dim: 0),
            _ => throw new ArgumentOutOfRangeException(nameof(method), method, "Unknown majority sign method."),
        };
        // +1 where tally ≥ 0, else −1; broadcast over the task dimension.
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar zero = 0, two = 2, one = 1;
        var majority = tally.ge(zero).to_type(sign.dtype) * two - one;
        return sign.eq(majority).MoveToOuterDisposeScope();
    }

    /// <summary>Σ over tasks of the agreeing entries divided by their count (count clamped to ≥ 1).</summary>
    public static Tensor DisjointMerge(Tensor stackedWeighted, Tensor majorityMask)
    {
        ArgumentNullException.ThrowIfNull(stackedWeighted);
        ArgumentNullException.ThrowIfNull(majorityMask);
        using var scope = NewDisposeScope();
        var mask = majorityMask.to_type(stackedWeighted.dtype);
        var total = (stackedWeighted * mask).sum(dim: 0);
        using Scalar minCount = 1.0;
        var count = mask.sum(dim: 0).clamp_min(minCount);
        return (total / count).MoveToOuterDisposeScope();
    }

    private static Tensor ElectAndMerge(Tensor stacked, IReadOnlyList<double> weights, MajoritySignMethod method)
    {
        var mask = MajoritySignMask(stacked, method);
        return DisjointMerge(stacked * WeightColumn(stacked, weights), mask);
    }

    private static Tensor WeightedSum(Tensor stacked, IReadOnlyList<double> weights) =>
        (stacked * WeightColumn(stacked, weights)).sum(dim: 0);

    /// <summary>Weights shaped [n, 1, 1, …] so they broadcast over each stacked task.</summary>
    private static Tensor WeightColumn(Tensor stacked, IReadOnlyList<double> weights)
    {
        var shape = new long[stacked.dim()];
        Array.Fill(shape, 1L);
        shape[0] = weights.Count;
        return tensor(weights.ToArray(), dtype: stacked.dtype, device: stacked.device).view(shape);
    }

    private static Tensor MagnitudeMask(Tensor t, double density)
    {
        // Python's int() truncates toward zero, as does the cast.
        var k = checked((int)(density * t.numel()));
        var flat = t.reshape(-1);
        var mask = zeros_like(flat);
        if (k > 0)
        {
            var (_, indices) = flat.abs().topk(k);
            using Scalar one = 1;
            mask.index_fill_(0, indices, one);
        }
        return t * mask.view(t.shape);
    }

    private static Tensor RandomPrune(Tensor t, double density, bool rescale, Generator? generator)
    {
        // density 0 drops everything; returning zeros avoids PEFT's 0/0 = NaN when rescaling.
        if (density == 0)
            return zeros_like(t);
        using Scalar keepProb = density;
        var mask = bernoulli(full_like(t, keepProb), generator);
        var pruned = t * mask;
        return rescale ? pruned / keepProb : pruned;
    }

    private static void Validate(IReadOnlyList<Tensor> tasks, IReadOnlyList<double> weights)
    {
        ArgumentNullException.ThrowIfNull(tasks);
        ArgumentNullException.ThrowIfNull(weights);
        if (tasks.Count == 0)
            throw new ArgumentException("At least one task tensor is required.", nameof(tasks));
        if (weights.Count != tasks.Count)
            throw new ArgumentException(
                $"Got {weights.Count} weights for {tasks.Count} task tensors; they must match.", nameof(weights));
        var shape = tasks[0].shape;
        for (var i = 1; i < tasks.Count; i++)
        {
            if (!tasks[i].shape.SequenceEqual(shape))
                throw new ArgumentException(
                    $"Task tensor {i} has shape [{string.Join(", ", tasks[i].shape)}] but task 0 has " +
                    $"[{string.Join(", ", shape)}]; all tasks must have the same shape.", nameof(tasks));
        }
    }
}
