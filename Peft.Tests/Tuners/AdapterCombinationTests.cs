using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

// The "Merge" namespace keeps these under the `FullyQualifiedName~Merge` filter used for this area.
namespace Peft.Tests.Tuners.Merge;

/// <summary>Expected results come from explicit ΔW sums, element loops, or the test's own SVD.</summary>
public class AdapterCombinationTests
{
    private const int Out = 3, In = 4;

    private static double[] D(Tensor t) => t.contiguous().data<double>().ToArray();

    private static LoraFactors Source(int rank, double scaling, ulong seed)
    {
        var g = new Generator(seed, CPU);
        return new LoraFactors(randn([rank, In], dtype: ScalarType.Float64, generator: g),
            randn([Out, rank], dtype: ScalarType.Float64, generator: g), scaling);
    }

    /// <summary>Σ wᵢ·sᵢ·Bᵢ·Aᵢ, the exact weighted sum of the source deltas.</summary>
    private static Tensor WeightedDelta(IReadOnlyList<LoraFactors> sources, IReadOnlyList<double> w)
    {
        var sum = zeros(Out, In, dtype: ScalarType.Float64);
        for (var i = 0; i < sources.Count; i++)
            sum += sources[i].B.matmul(sources[i].A) * (w[i] * sources[i].Scaling);
        return sum;
    }

    /// <summary>Σ wᵢ·sᵢ²·Bᵢ·Aᵢ: PEFT 0.10's svd family weighs the already-scaled ΔWᵢ by wᵢ·sᵢ (scaling twice).</summary>
    private static double[] SvdWeights(IReadOnlyList<LoraFactors> sources, IReadOnlyList<double> w) =>
        sources.Select((s, i) => w[i] * s.Scaling).ToArray();

    private static void AllClose(Tensor expected, Tensor actual, double tol)
    {
        Assert.Equal(expected.shape, actual.shape);
        var diff = (expected - actual).abs().max().item<double>();
        Assert.True(diff <= tol, $"max abs difference {diff} > {tol}");
    }

    public static TheoryData<string, CombinationType> AllNames => new()
    {
        { "linear", CombinationType.Linear }, { "cat", CombinationType.Cat }, { "svd", CombinationType.Svd },
        { "ties", CombinationType.Ties }, { "ties_svd", CombinationType.TiesSvd },
        { "dare_linear", CombinationType.DareLinear }, { "dare_linear_svd", CombinationType.DareLinearSvd },
        { "dare_ties", CombinationType.DareTies }, { "dare_ties_svd", CombinationType.DareTiesSvd },
        { "magnitude_prune", CombinationType.MagnitudePrune },
        { "magnitude_prune_svd", CombinationType.MagnitudePruneSvd },
    };

    [Theory]
    [MemberData(nameof(AllNames))]
    public void Parse_EveryName(string name, CombinationType expected)
    {
        Assert.Equal(expected, AdapterCombination.Parse(name));
        Assert.Equal(name, AdapterCombination.ToName(expected));
    }

    [Theory]
    [InlineData("Linear")]
    [InlineData("dare")]
    [InlineData("")]
    public void Parse_BadNameNamesTheValue(string name)
    {
        var ex = Assert.Throws<ArgumentException>(() => AdapterCombination.Parse(name));
        Assert.Contains($"'{name}'", ex.Message);
    }

    [Fact]
    public void Cat_IsExactWeightedSumOfDeltas()
    {
        using var scope = NewDisposeScope();
        LoraFactors[] sources = [Source(2, 0.5, 1), Source(3, 2.0, 2)];
        double[] w = [0.7, -1.3];
        var (a, b) = AdapterCombination.Combine(sources, w, CombinationType.Cat, new CombineOptions());
        Assert.Equal(new long[] { 5, In }, a.shape);
        Assert.Equal(new long[] { Out, 5 }, b.shape);
        AllClose(WeightedDelta(sources, w), b.matmul(a), 1e-6);
    }

    [Fact]
    public void Linear_SplitsFactorAsSignedSqrtOnAAndSqrtOnB()
    {
        using var scope = NewDisposeScope();
        LoraFactors[] sources = [Source(2, 0.5, 3), Source(2, 2.0, 4)];
        double[] w = [0.7, -1.3];
        var (a, b) = AdapterCombination.Combine(sources, w, CombinationType.Linear, new CombineOptions());
        // f = w·s = 0.35, -2.6 → A gets ±√|f|, B gets √|f|.
        double[] fa = [Math.Sqrt(0.35), -Math.Sqrt(2.6)], fb = [Math.Sqrt(0.35), Math.Sqrt(2.6)];
        double[] a0 = D(sources[0].A), a1 = D(sources[1].A), b0 = D(sources[0].B), b1 = D(sources[1].B);
        var expectA = a0.Select((x, j) => fa[0] * x + fa[1] * a1[j]).ToArray();
        var expectB = b0.Select((x, j) => fb[0] * x + fb[1] * b1[j]).ToArray();
        AllClose(tensor(expectA, [2, In]), a, 1e-12);
        AllClose(tensor(expectB, [Out, 2]), b, 1e-12);
    }

    [Theory]
    [InlineData(0.8)]
    [InlineData(-1.5)]
    public void Linear_SingleSourceReproducesScaledDelta(double weight)
    {
        using var scope = NewDisposeScope();
        LoraFactors[] sources = [Source(2, 2.0, 5)];
        var (a, b) = AdapterCombination.Combine(sources, [weight], CombinationType.Linear, new CombineOptions());
        AllClose(WeightedDelta(sources, [weight]), b.matmul(a), 1e-12);
    }

    [Theory]
    [InlineData(CombinationType.Linear)]
    [InlineData(CombinationType.Ties)]
    [InlineData(CombinationType.DareLinear)]
    [InlineData(CombinationType.DareTies)]
    [InlineData(CombinationType.MagnitudePrune)]
    public void SplitTypes_RejectUnequalRanks(CombinationType type)
    {
        using var scope = NewDisposeScope();
        var ex = Assert.Throws<ArgumentException>(() => AdapterCombination.Combine(
            [Source(2, 1, 6), Source(3, 1, 7)], [1.0, 1.0], type, new CombineOptions(Density: 0.5)));
        Assert.Contains("same rank", ex.Message);
        Assert.Contains(AdapterCombination.ToName(type), ex.Message);
        Assert.Contains("2, 3", ex.Message);
    }

    [Fact]
    public void PruningTypes_RequireDensity()
    {
        using var scope = NewDisposeScope();
        Assert.Contains("density", Assert.Throws<ArgumentException>(() => AdapterCombination.Combine(
            [Source(2, 1, 6), Source(2, 1, 7)], [1.0, 1.0], CombinationType.TiesSvd, new CombineOptions())).Message);
    }

    [Fact]
    public void Ties_MergesAAndBSeparatelyWithSplitWeights()
    {
        using var scope = NewDisposeScope();
        LoraFactors[] sources = [Source(2, 0.5, 8), Source(2, 2.0, 9), Source(2, 1.0, 10)];
        double[] w = [1.0, 0.25, -0.5];
        var f = w.Select((x, i) => x * sources[i].Scaling).ToArray();
        var wA = f.Select(x => Math.Sign(x) * Math.Sqrt(Math.Abs(x))).ToArray();
        var wB = f.Select(x => Math.Sqrt(Math.Abs(x))).ToArray();
        var (a, b) = AdapterCombination.Combine(sources, w, CombinationType.Ties, new CombineOptions(Density: 0.5));
        var expectA = Ref.Ties(sources.Select(s => Ref.Prune(D(s.A), 0.5)).ToArray(), wA, false);
        var expectB = Ref.Ties(sources.Select(s => Ref.Prune(D(s.B), 0.5)).ToArray(), wB, false);
        AllClose(tensor(expectA, [2, In]), a, 1e-12);
        AllClose(tensor(expectB, [Out, 2]), b, 1e-12);
    }

    [Fact]
    public void DareLinear_DensityOneEqualsLinear()
    {
        using var scope = NewDisposeScope();
        LoraFactors[] sources = [Source(2, 0.5, 11), Source(2, 2.0, 12)];
        double[] w = [0.6, 0.4];
        var lin = AdapterCombination.Combine(sources, w, CombinationType.Linear, new CombineOptions());
        var dare = AdapterCombination.Combine(sources, w, CombinationType.DareLinear,
            new CombineOptions(Density: 1.0, Generator: new Generator(3, CPU)));
        AllClose(lin.A, dare.A, 1e-12);
        AllClose(lin.B, dare.B, 1e-12);
    }

    [Fact]
    public void Svd_FullRankReproducesPeftsWeightedSumWithScalingTwice()
    {
        using var scope = NewDisposeScope();
        LoraFactors[] sources = [Source(2, 0.5, 13), Source(2, 2.0, 14)];
        double[] w = [0.7, -1.3];
        var (a, b) = AdapterCombination.Combine(sources, w, CombinationType.Svd, new CombineOptions(SvdRank: Out));
        Assert.Equal(new long[] { Out, In }, a.shape);
        Assert.Equal(new long[] { Out, Out }, b.shape);
        AllClose(WeightedDelta(sources, SvdWeights(sources, w)), b.matmul(a), 1e-5);
        // Not the once-scaled sum that cat builds (the scalings here are 0.5 and 2).
        Assert.True((WeightedDelta(sources, w) - b.matmul(a)).abs().max().item<double>() > 0.1);
        // A = Vh has orthonormal rows.
        AllClose(eye(Out, dtype: ScalarType.Float64), a.matmul(a.t()), 1e-10);
    }

    [Fact]
    public void Svd_DefaultRankIsMaxSourceRank_AndIsBestApproximation()
    {
        using var scope = NewDisposeScope();
        LoraFactors[] sources = [Source(1, 0.5, 15), Source(2, 2.0, 16), Source(1, 1.0, 17)];
        double[] w = [1.0, 0.5, 2.0];
        var (a, b) = AdapterCombination.Combine(sources, w, CombinationType.Svd, new CombineOptions());
        Assert.Equal(new long[] { 2, In }, a.shape);
        Assert.Equal(new long[] { Out, 2 }, b.shape);
        // Eckart–Young: the rank-2 truncation of the exact ΔW.
        var (u, s, vh) = linalg.svd(WeightedDelta(sources, SvdWeights(sources, w)), fullMatrices: false);
        var best = u[.., ..2].matmul(diag(s[..2])).matmul(vh[..2, ..]);
        AllClose(best, b.matmul(a), 1e-10);
        AllClose(s[..2], linalg.vector_norm(b, dims: [0]), 1e-10);
    }

    [Fact]
    public void Svd_RankAboveMatrixRankIsZeroPadded()
    {
        using var scope = NewDisposeScope();
        LoraFactors[] sources = [Source(2, 1.0, 18), Source(2, 1.0, 19)];
        var (a, b) = AdapterCombination.Combine(sources, [1.0, 1.0], CombinationType.Svd, new CombineOptions(SvdRank: 5));
        Assert.Equal(new long[] { 5, In }, a.shape);
        Assert.Equal(new long[] { Out, 5 }, b.shape);
        AllClose(WeightedDelta(sources, [1.0, 1.0]), b.matmul(a), 1e-10);
    }

    [Fact]
    public void Svd_ClampLimitsFactorsToSignedQuantile()
    {
        using var scope = NewDisposeScope();
        LoraFactors[] sources = [Source(2, 1.0, 20), Source(2, 1.0, 21)];
        double[] w = [1.0, -1.0];
        var free = AdapterCombination.Combine(sources, w, CombinationType.Svd, new CombineOptions(SvdRank: 2));
        var clamped = AdapterCombination.Combine(sources, w, CombinationType.Svd, new CombineOptions(SvdRank: 2, SvdClamp: 0.9));
        // Independent quantile: linear interpolation at 0.9·(n−1) over the sorted signed values.
        var all = D(free.B).Concat(D(free.A)).OrderBy(x => x).ToArray();
        var pos = 0.9 * (all.Length - 1);
        var lo = (int)Math.Floor(pos);
        var hi = all[lo] + (pos - lo) * (all[Math.Min(lo + 1, all.Length - 1)] - all[lo]);
        Assert.True(hi > 0);
        double Clip(double x) => Math.Clamp(x, -hi, hi);
        AllClose(tensor(D(free.A).Select(Clip).ToArray(), free.A.shape), clamped.A, 1e-12);
        AllClose(tensor(D(free.B).Select(Clip).ToArray(), free.B.shape), clamped.B, 1e-12);
        Assert.Contains(D(free.A).Concat(D(free.B)), x => Math.Abs(x) > hi);
    }

    [Fact]
    public void MagnitudePruneSvd_PrunesFullDeltas()
    {
        using var scope = NewDisposeScope();
        LoraFactors[] sources = [Source(2, 0.5, 22), Source(1, 2.0, 23)];
        double[] w = [1.5, -0.5];
        var (a, b) = AdapterCombination.Combine(sources, w, CombinationType.MagnitudePruneSvd,
            new CombineOptions(SvdRank: Out, Density: 0.5));
        var deltas = sources.Select(s => Ref.Prune(D(s.B.matmul(s.A) * s.Scaling), 0.5)).ToArray();
        var f = SvdWeights(sources, w);
        var expect = deltas[0].Select((x, j) => f[0] * x + f[1] * deltas[1][j]).ToArray();
        AllClose(tensor(expect, [Out, In]), b.matmul(a), 1e-10);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TiesSvd_MergesFullDeltas_LayoutIndependent(bool fanInFanOut)
    {
        using var scope = NewDisposeScope();
        LoraFactors[] sources = [Source(2, 0.5, 24), Source(2, 2.0, 25), Source(1, 1.0, 26)];
        double[] w = [1.0, 0.5, 0.8];
        var (a, b) = AdapterCombination.Combine(sources, w, CombinationType.TiesSvd,
            new CombineOptions(SvdRank: Out, Density: 0.5, MajoritySign: MajoritySignMethod.Frequency, FanInFanOut: fanInFanOut));
        var deltas = sources.Select(s => Ref.Prune(D(s.B.matmul(s.A) * s.Scaling), 0.5)).ToArray();
        AllClose(tensor(Ref.Ties(deltas, SvdWeights(sources, w), true), [Out, In]), b.matmul(a), 1e-10);
    }

    [Fact]
    public void DareSvd_IsReproducibleWithSeed_AndKeepsDtype()
    {
        using var scope = NewDisposeScope();
        LoraFactors[] sources = [Source(2, 0.5, 27), Source(2, 2.0, 28)];
        var f32 = sources.Select(s => new LoraFactors(s.A.to_type(ScalarType.Float32), s.B.to_type(ScalarType.Float32), s.Scaling)).ToArray();
        (Tensor A, Tensor B) Run(ulong seed) => AdapterCombination.Combine(f32, [1.0, 1.0], CombinationType.DareTiesSvd,
            new CombineOptions(Density: 0.5, Generator: new Generator(seed, CPU)));
        var (a1, b1) = Run(5);
        var (a2, b2) = Run(5);
        Assert.Equal(ScalarType.Float32, a1.dtype);
        Assert.Equal(ScalarType.Float32, b1.dtype);
        Assert.True(a1.eq(a2).all().item<bool>() && b1.eq(b2).all().item<bool>());
    }
}
