using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.Lora;

/// <summary>The <c>combination_type</c> values of PEFT's <c>add_weighted_adapter</c>.</summary>
public enum CombinationType
{
    Linear, Cat, Svd, Ties, TiesSvd, DareLinear, DareLinearSvd, DareTies, DareTiesSvd, MagnitudePrune, MagnitudePruneSvd,
}

/// <summary>One source adapter on one module: A [r, in], B [out, r] in LoRA layout, and its scaling.</summary>
public sealed record LoraFactors(Tensor A, Tensor B, double Scaling);

/// <summary>
/// Options of <c>add_weighted_adapter</c>. <see cref="SvdRank"/> defaults to the largest source rank;
/// <see cref="SvdClamp"/> is the quantile used to clamp the SVD factors; <see cref="Density"/> is required by
/// the TIES/DARE/magnitude types; <see cref="Generator"/> drives DARE's random masks.
/// </summary>
public sealed record CombineOptions(
    int? SvdRank = null,
    double? SvdClamp = null,
    double? Density = null,
    MajoritySignMethod MajoritySign = MajoritySignMethod.Total,
    bool FanInFanOut = false,
    Generator? Generator = null);

/// <summary>
/// Per-module tensor math of PEFT's <c>LoraModel.add_weighted_adapter</c>: turns several source adapters
/// into one new (A, B) pair. The new adapter's scaling is 1 (PEFT sets r = lora_alpha = new rank).
/// </summary>
public static class AdapterCombination
{
    private static readonly (string Name, CombinationType Type)[] Names =
    [
        ("linear", CombinationType.Linear), ("cat", CombinationType.Cat), ("svd", CombinationType.Svd),
        ("ties", CombinationType.Ties), ("ties_svd", CombinationType.TiesSvd),
        ("dare_linear", CombinationType.DareLinear), ("dare_linear_svd", CombinationType.DareLinearSvd),
        ("dare_ties", CombinationType.DareTies), ("dare_ties_svd", CombinationType.DareTiesSvd),
        ("magnitude_prune", CombinationType.MagnitudePrune), ("magnitude_prune_svd", CombinationType.MagnitudePruneSvd),
    ];

    /// <summary>Parses PEFT's snake_case combination name (exact, case-sensitive like PEFT).</summary>
    public static CombinationType Parse(string name)
    {
        foreach (var (n, t) in Names)
            if (string.Equals(n, name, StringComparison.Ordinal))
                return t;
        throw new ArgumentException(
            $"Invalid combination type '{name}'; expected one of: {string.Join(", ", Names.Select(x => x.Name))}.",
            nameof(name));
    }

    /// <summary>PEFT's snake_case name of a combination type (inverse of <see cref="Parse"/>).</summary>
    public static string ToName(CombinationType type) =>
        Names.First(x => x.Type == type).Name;

    /// <summary>PEFT forces "linear" when only one adapter is combined; the caller applies this once per call.</summary>
    public static CombinationType ForAdapterCount(CombinationType requested, int adapterCount) =>
        adapterCount == 1 ? CombinationType.Linear : requested;

    /// <summary>Whether the type works on full ΔW followed by a truncated SVD.</summary>
    public static bool IsSvdBased(CombinationType type) => type is CombinationType.Svd or CombinationType.TiesSvd
        or CombinationType.DareLinearSvd or CombinationType.DareTiesSvd or CombinationType.MagnitudePruneSvd;

    /// <summary>Whether the type needs <see cref="CombineOptions.Density"/>.</summary>
    public static bool NeedsDensity(CombinationType type) =>
        type is not (CombinationType.Linear or CombinationType.Cat or CombinationType.Svd);

    /// <summary>
    /// Rank of the combined adapter: Σ rᵢ for cat, SvdRank ?? max rᵢ for the SVD types, the common rank otherwise.
    /// </summary>
    public static int NewRank(IReadOnlyList<int> sourceRanks, CombinationType type, int? svdRank = null)
    {
        if (sourceRanks.Count == 0)
            throw new ArgumentException("At least one source adapter is required.", nameof(sourceRanks));
        if (type == CombinationType.Cat)
            return sourceRanks.Sum();
        if (IsSvdBased(type))
            return svdRank ?? sourceRanks.Max();
        if (sourceRanks.Distinct().Count() > 1)
            throw new ArgumentException(
                $"All adapters must have the same rank when using combination type '{ToName(type)}' " +
                $"(got ranks {string.Join(", ", sourceRanks)}); use 'cat' or an svd-based type instead.");
        return sourceRanks[0];
    }

    /// <summary>
    /// Combines the source adapters of one module. Returns new tensors A [newR, in] and B [out, newR]
    /// (dtype of the first source's A); the sources are not modified.
    /// </summary>
    public static (Tensor A, Tensor B) Combine(IReadOnlyList<LoraFactors> sources, IReadOnlyList<double> weights,
        CombinationType type, CombineOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var ranks = ValidateSources(sources, weights);
        var newRank = NewRank(ranks, type, options.SvdRank);
        if (newRank <= 0)
            throw new ArgumentException($"The new rank must be positive, got {newRank}.", nameof(options));
        if (NeedsDensity(type) && options.Density is null)
            throw new ArgumentException(
                $"Combination type '{ToName(type)}' requires a density.", nameof(options));
        if (options.SvdClamp is { } c && !(c >= 0 && c <= 1))
            throw new ArgumentException($"SvdClamp must be a quantile in [0, 1], got {c}.", nameof(options));

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (a, b) = type switch
        {
            CombinationType.Cat => Cat(sources, weights),
            _ when IsSvdBased(type) => Svd(sources, weights, type, newRank, options),
            _ => SplitFactors(sources, weights, type, options),
        };
        var dtype = sources[0].A.dtype;
        return (a.to_type(dtype).MoveToOuterDisposeScope(), b.to_type(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// cat: stack ranks. Rows of A carry wᵢ·sᵢ, B is concatenated unchanged, so B·A = Σ wᵢ·sᵢ·Bᵢ·Aᵢ exactly.
    /// </summary>
    private static (Tensor A, Tensor B) Cat(IReadOnlyList<LoraFactors> sources, IReadOnlyList<double> weights)
    {
        var aParts = sources.Select((s, i) =>
        {
            // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
            using Scalar factor = weights[i] * s.Scaling;
            return s.A * factor;
        }).ToArray();
        return (cat(aParts, 0), cat(sources.Select(s => s.B).ToArray(), 1));
    }

    /// <summary>
    /// linear / ties / dare_* / magnitude_prune: A's and B's are merged separately. Like PEFT, the merge
    /// function receives the raw Aᵢ (resp. Bᵢ) with per-source weights; PEFT uses √(wᵢ·sᵢ) for both, which
    /// fails for negative products, so we split fᵢ = wᵢ·sᵢ as sign(fᵢ)·√|fᵢ| on A and √|fᵢ| on B (identical to
    /// PEFT when fᵢ ≥ 0). Passing raw tensors plus weights (not pre-weighted tensors with weights 1) matters
    /// for TIES, whose sign election ignores the weights. For "linear" the result is Σ√|fᵢ|Bᵢ · Σsign(fᵢ)√|fᵢ|Aᵢ,
    /// which has cross terms and so is not Σ fᵢ·Bᵢ·Aᵢ (upstream issue #3004); that is PEFT's behaviour.
    /// A is merged before B so DARE consumes the generator in PEFT's order.
    /// </summary>
    private static (Tensor A, Tensor B) SplitFactors(IReadOnlyList<LoraFactors> sources, IReadOnlyList<double> weights,
        CombinationType type, CombineOptions options)
    {
        var f = sources.Select((s, i) => weights[i] * s.Scaling).ToArray();
        var wA = f.Select(x => Math.Sign(x) * Math.Sqrt(Math.Abs(x))).ToArray();
        var wB = f.Select(x => Math.Sqrt(Math.Abs(x))).ToArray();
        var a = Merge(sources.Select(s => s.A).ToArray(), wA, type, options);
        var b = Merge(sources.Select(s => s.B).ToArray(), wB, type, options);
        return (a, b);
    }

    /// <summary>
    /// svd family: merge the full ΔWᵢ = sᵢ·Bᵢ·Aᵢ with weights wᵢ·sᵢ, then keep the top-r singular triplets:
    /// B = U_r·diag(S_r), A = Vh_r. The scaling enters twice (svd: M = Σ wᵢ·sᵢ²·Bᵢ·Aᵢ) because that is what PEFT 0.10
    /// builds: <c>_svd_generalized_task_arithmetic_weighted_adapter</c> appends <c>weight * target.scaling[adapter]</c>
    /// to its weights and then merges <c>target.get_delta_weight(adapter)</c>, which is already scaled. We reproduce it
    /// so that an adapter combined here is the adapter PEFT makes from the same inputs (checked against
    /// Golden/llama_add_weighted_adapter); with lora_alpha == r (scaling 1) it is the plain weighted sum. cat and
    /// linear apply the scaling once, as in PEFT.
    /// </summary>
    private static (Tensor A, Tensor B) Svd(IReadOnlyList<LoraFactors> sources, IReadOnlyList<double> weights,
        CombinationType type, int rank, CombineOptions options)
    {
        // SVD and quantile need float32/float64; half-precision adapters are promoted and cast back by the caller.
        var work = sources[0].A.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        // PEFT merges ΔW in the base layer's layout ([in, out] for fan_in_fan_out) and transposes back before
        // the SVD. Only DARE's random draws depend on the layout, so we mirror it to draw masks in PEFT's order.
        var deltas = sources.Select(s =>
        {
            using Scalar scaling = s.Scaling;
            var d = s.B.to_type(work).matmul(s.A.to_type(work)) * scaling;
            return options.FanInFanOut ? d.t() : d;
        }).ToArray();
        var delta = Merge(deltas, sources.Select((s, i) => weights[i] * s.Scaling).ToArray(), type, options);
        if (options.FanInFanOut)
            delta = delta.t();

        var (u, s, vh) = linalg.svd(delta, fullMatrices: false);
        var keep = Math.Min(rank, s.shape[0]);
        var b = u.narrow(1, 0, keep) * s.narrow(0, 0, keep);   // U_r·diag(S_r) as a column scale
        var a = vh.narrow(0, 0, keep);
        if (options.SvdClamp is { } q)
        {
            // PEFT's quantile is over the signed values of U_r·S_r and Vh_r, not over their magnitudes.
            var hi = quantile(cat([b.flatten(), a.flatten()]), tensor(q, dtype: work, device: delta.device)).item<double>();
            using Scalar lowest = -hi, highest = hi;
            b = b.clamp(lowest, highest);
            a = a.clamp(lowest, highest);
        }
        if (keep < rank)
        {
            // ΔW has fewer singular values than the requested rank: pad with zero components so the shapes
            // match the new adapter's r (PEFT would fail here); B·A is unchanged.
            a = cat([a, zeros(rank - keep, a.shape[1], dtype: work, device: a.device)], 0);
            b = cat([b, zeros(b.shape[0], rank - keep, dtype: work, device: b.device)], 1);
        }
        return (a.contiguous(), b.contiguous());
    }

    private static Tensor Merge(Tensor[] tasks, double[] weights, CombinationType type, CombineOptions o)
    {
        var density = o.Density ?? 1.0;
        return type switch
        {
            CombinationType.Linear or CombinationType.Svd => MergeUtilities.TaskArithmetic(tasks, weights),
            CombinationType.Ties or CombinationType.TiesSvd =>
                MergeUtilities.Ties(tasks, weights, density, o.MajoritySign),
            CombinationType.DareLinear or CombinationType.DareLinearSvd =>
                MergeUtilities.DareLinear(tasks, weights, density, o.Generator),
            CombinationType.DareTies or CombinationType.DareTiesSvd =>
                MergeUtilities.DareTies(tasks, weights, density, o.MajoritySign, o.Generator),
            CombinationType.MagnitudePrune or CombinationType.MagnitudePruneSvd =>
                MergeUtilities.MagnitudePrune(tasks, weights, density),
            _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Not a mergeable combination type."),
        };
    }

    /// <summary>Checks counts and shapes; returns each source's rank.</summary>
    private static int[] ValidateSources(IReadOnlyList<LoraFactors> sources, IReadOnlyList<double> weights)
    {
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(weights);
        if (sources.Count == 0)
            throw new ArgumentException("No matching LoRA adapters to combine.", nameof(sources));
        if (weights.Count != sources.Count)
            throw new ArgumentException(
                $"Got {weights.Count} weights for {sources.Count} adapters; they must match.", nameof(weights));
        var ranks = new int[sources.Count];
        for (var i = 0; i < sources.Count; i++)
        {
            var (a, b) = (sources[i].A, sources[i].B);
            if (a.dim() != 2 || b.dim() != 2 || a.shape[0] != b.shape[1])
                throw new ArgumentException(
                    $"Adapter {i}: expected A [r, in] and B [out, r], got A [{string.Join(", ", a.shape)}] " +
                    $"and B [{string.Join(", ", b.shape)}].", nameof(sources));
            if (a.shape[1] != sources[0].A.shape[1] || b.shape[0] != sources[0].B.shape[0])
                throw new ArgumentException(
                    $"Adapter {i} maps {a.shape[1]} → {b.shape[0]} features but adapter 0 maps " +
                    $"{sources[0].A.shape[1]} → {sources[0].B.shape[0]}.", nameof(sources));
            ranks[i] = (int)a.shape[0];
        }
        return ranks;
    }
}
