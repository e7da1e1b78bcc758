using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

// The "Merge" namespace keeps these under the `FullyQualifiedName~Merge` filter used for this area.
namespace Peft.Tests.Tuners.Merge;

/// <summary>Expected values are worked by hand or by plain loops over double arrays (see <see cref="Ref"/>).</summary>
public class MergeUtilitiesTests
{
    private static Tensor T(long[] shape, params double[] v) => tensor(v, shape);
    private static Tensor V(params double[] v) => tensor(v);
    private static double[] D(Tensor t) => t.contiguous().data<double>().ToArray();

    private static void Close(double[] expected, Tensor actual, double tol = 1e-12)
    {
        var a = D(actual);
        Assert.Equal(expected.Length, a.Length);
        for (var i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(expected[i] - a[i]) <= tol, $"index {i}: expected {expected[i]}, got {a[i]}");
    }

    [Fact]
    public void TaskArithmetic_IsWeightedSum()
    {
        using var scope = NewDisposeScope();
        var a = Enumerable.Range(1, 12).Select(i => (double)i).ToArray();
        var b = Enumerable.Range(0, 12).Select(i => (double)(i % 3 - 1)).ToArray();
        var result = MergeUtilities.TaskArithmetic([T([3, 4], a), T([3, 4], b)], [0.5, -2.0]);
        Assert.Equal(new long[] { 3, 4 }, result.shape);
        Close(a.Select((x, i) => 0.5 * x - 2.0 * b[i]).ToArray(), result);
    }

    [Theory]
    [InlineData(0.5, 6)]
    [InlineData(0.34, 4)]   // int(4.08) = 4
    [InlineData(0.99, 11)]
    [InlineData(0.0, 0)]
    public void MagnitudePrune_KeepsExactlyKLargest(double density, int k)
    {
        using var scope = NewDisposeScope();
        var x = new double[] { 1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12 };
        var pruned = MergeUtilities.Prune(T([3, 4], x), density, "magnitude");
        var p = D(pruned);
        Assert.Equal(k, p.Count(v => v != 0));
        // |x| runs 1..12, so the survivors are exactly |x| > 12 - k, unchanged in value.
        Close(x.Select(v => Math.Abs(v) > 12 - k ? v : 0).ToArray(), pruned);
    }

    [Fact]
    public void Prune_DensityOneReturnsUnchangedCopy_AndValidates()
    {
        using var scope = NewDisposeScope();
        var x = V(1, -2, 3);
        foreach (var method in new[] { "magnitude", "random" })
        {
            var same = MergeUtilities.Prune(x, 1.0, method, rescale: true);
            Close([1, -2, 3], same);
            Assert.NotEqual(x.Handle, same.Handle);
        }
        Assert.Throws<ArgumentException>(() => MergeUtilities.Prune(x, -0.1, "magnitude"));
        Assert.Contains("bogus", Assert.Throws<ArgumentException>(() => MergeUtilities.Prune(x, 0.5, "bogus")).Message);
    }

    [Fact]
    public void MagnitudePrune_PrunesEachTaskThenSums()
    {
        using var scope = NewDisposeScope();
        var a = new double[] { 0.1, -5, 2, 0.3, -4, 1 };
        var b = new double[] { 6, 0.2, -0.5, -3, 1.5, 0.7 };
        var result = MergeUtilities.MagnitudePrune([T([2, 3], a), T([2, 3], b)], [2.0, -1.0], 0.5);
        var pa = Ref.Prune(a, 0.5);
        var pb = Ref.Prune(b, 0.5);
        Close(pa.Select((v, i) => 2 * v - pb[i]).ToArray(), result);
        // By hand: a keeps -5, -4, 2; b keeps 6, -3, 1.5.
        Close([-6, -10, 4, 3, -9.5, 0], result);
    }

    // Worked by hand (density 1, so only sign election and disjoint merge act):
    //   t1 = [ 3, -1,  2, 0,  1]
    //   t2 = [-1, -4,  1, 5,  1]
    //   t3 = [ 2,  1, -3, 0, -5]
    // total:     Σ = [4, -4, 0, 5, -3] → signs [+, -, +, +, -] (0 elects +)
    // frequency: Σ sign = [1, -1, 1, 1, 1] → signs [+, -, +, +, +]
    private static readonly double[][] SignConflict = [[3, -1, 2, 0, 1], [-1, -4, 1, 5, 1], [2, 1, -3, 0, -5]];

    [Theory]
    [InlineData(MajoritySignMethod.Total, new double[] { 2.5, -2.5, 1.5, 5, -5 })]
    [InlineData(MajoritySignMethod.Frequency, new double[] { 2.5, -2.5, 1.5, 5, 1 })]
    public void Ties_SignConflictByHand(MajoritySignMethod method, double[] expected)
    {
        using var scope = NewDisposeScope();
        var tasks = SignConflict.Select(t => V(t)).ToArray();
        Close(expected, MergeUtilities.Ties(tasks, [1.0, 1.0, 1.0], 1.0, method));
        Assert.Equal(expected, Ref.Ties(SignConflict, [1, 1, 1], method == MajoritySignMethod.Frequency));
    }

    [Fact]
    public void Ties_ElectsSignOnUnweightedTasks()
    {
        using var scope = NewDisposeScope();
        var tasks = SignConflict.Select(t => V(t)).ToArray();
        // Position 0: unweighted Σ = 4 elects +, so t1 (3) and t3 (2·-1) are averaged: (3 - 2) / 2 = 0.5.
        // Electing on the weighted values (3, 1, -2; Σ 2 → +) would pick t1, t2 instead: (3 + 1) / 2 = 2.
        var result = MergeUtilities.Ties(tasks, [1.0, -1.0, -1.0], 1.0);
        Assert.Equal(0.5, D(result)[0], 12);
        Close(Ref.Ties(SignConflict, [1, -1, -1], false), result);
    }

    [Fact]
    public void Ties_PrunesBeforeElecting()
    {
        using var scope = NewDisposeScope();
        // density 0.4 of 5 → k = 2: t1 → [3,0,2,0,0], t2 → [0,-4,0,5,0], t3 → [0,0,-3,0,-5].
        // Σ = [3,-4,-1,5,-5]: position 2 flips to − (it was +1.5 without pruning).
        var tasks = SignConflict.Select(t => V(t)).ToArray();
        Close([3, -4, -3, 5, -5], MergeUtilities.Ties(tasks, [1.0, 1.0, 1.0], 0.4));
    }

    [Fact]
    public void MajoritySignMask_ZeroTallyElectsPlus_ZerosNeverAgree()
    {
        using var scope = NewDisposeScope();
        var stacked = T([3, 2], 1, 0, -1, 0, 0, 0);
        var mask = MergeUtilities.MajoritySignMask(stacked, MajoritySignMethod.Total);
        Assert.Equal(ScalarType.Bool, mask.dtype);
        Assert.Equal(new[] { true, false, false, false, false, false }, mask.data<bool>().ToArray());
    }

    [Fact]
    public void DisjointMerge_DividesByAgreeingCount_EmptyColumnIsZero()
    {
        using var scope = NewDisposeScope();
        var weighted = T([3, 3], 2, 5, 1, 4, -7, 1, 9, 3, 1);
        var mask = tensor(new[] { true, false, true, true, false, true, false, false, true }, [3, 3]);
        Close([3, 0, 1], MergeUtilities.DisjointMerge(weighted, mask));
    }

    [Fact]
    public void Dare_DensityOneIsTaskArithmetic()
    {
        using var scope = NewDisposeScope();
        var tasks = SignConflict.Select(t => V(t)).ToArray();
        double[] w = [0.5, 2, -1];
        var expected = Enumerable.Range(0, 5).Select(j => SignConflict.Select((t, i) => w[i] * t[j]).Sum()).ToArray();
        Close(expected, MergeUtilities.DareLinear(tasks, w, 1.0, new Generator(1, CPU)));
        Close(Ref.Ties(SignConflict, w, false), MergeUtilities.DareTies(tasks, w, 1.0, generator: new Generator(1, CPU)));
    }

    [Theory]
    [InlineData(0.3, true)]
    [InlineData(0.7, false)]
    public void RandomPrune_KeepRateMatchesDensity(double density, bool rescale)
    {
        using var scope = NewDisposeScope();
        var ones = torch.ones(200, 500, dtype: ScalarType.Float64);
        var pruned = MergeUtilities.Prune(ones, density, "random", rescale, new Generator(1234, CPU));
        var values = D(pruned);
        var kept = values.Count(v => v != 0) / (double)values.Length;
        // 100k Bernoulli draws: σ ≈ 0.0015, so ±0.01 is a ~7σ band.
        Assert.InRange(kept, density - 0.01, density + 0.01);
        var keptValue = rescale ? 1 / density : 1.0;
        Assert.All(values.Where(v => v != 0), v => Assert.Equal(keptValue, v, 12));
    }

    [Fact]
    public void RandomPrune_IsReproducibleWithSeed()
    {
        using var scope = NewDisposeScope();
        var x = torch.arange(1, 101, dtype: ScalarType.Float64);
        var a = D(MergeUtilities.Prune(x, 0.5, "random", false, new Generator(7, CPU)));
        var b = D(MergeUtilities.Prune(x, 0.5, "random", false, new Generator(7, CPU)));
        var c = D(MergeUtilities.Prune(x, 0.5, "random", false, new Generator(8, CPU)));
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Equal(0, MergeUtilities.Prune(x, 0.0, "random", true).count_nonzero().item<long>());
    }

    [Fact]
    public void Dare_MatchesLoopWithSameDraws()
    {
        using var scope = NewDisposeScope();
        const double density = 0.5;
        double[] w = [1.5, -0.5, 1];
        var tasks = SignConflict.Select(t => V(t)).ToArray();
        // One Bernoulli draw per task, in task order, from an identically seeded generator.
        var g = new Generator(99, CPU);
        var dropped = SignConflict.Select(t =>
        {
            var m = D(bernoulli(torch.full(t.Length, density, dtype: ScalarType.Float64), g));
            return t.Select((v, j) => v * m[j] / density).ToArray();
        }).ToArray();
        var linear = Enumerable.Range(0, 5).Select(j => dropped.Select((t, i) => w[i] * t[j]).Sum()).ToArray();
        Close(linear, MergeUtilities.DareLinear(tasks, w, density, new Generator(99, CPU)));
        Close(Ref.Ties(dropped, w, true),
            MergeUtilities.DareTies(tasks, w, density, MajoritySignMethod.Frequency, new Generator(99, CPU)));
    }

    [Fact]
    public void RejectsMismatchedInputs()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => MergeUtilities.TaskArithmetic([], []));
        Assert.Throws<ArgumentException>(() => MergeUtilities.TaskArithmetic([V(1, 2)], [1.0, 2.0]));
        Assert.Contains("shape", Assert.Throws<ArgumentException>(
            () => MergeUtilities.Ties([V(1, 2), V(1, 2, 3)], [1.0, 1.0], 0.5)).Message);
    }
}

/// <summary>Straightforward loop implementations used as independent oracles.</summary>
internal static class Ref
{
    /// <summary>Keeps the ⌊density·n⌋ entries of largest |v| (inputs have distinct magnitudes).</summary>
    public static double[] Prune(double[] v, double density)
    {
        var k = (int)(density * v.Length);
        var keep = v.Select((x, i) => (Abs: Math.Abs(x), i)).OrderByDescending(p => p.Abs).Take(k).Select(p => p.i).ToHashSet();
        return v.Select((x, i) => keep.Contains(i) ? x : 0).ToArray();
    }

    /// <summary>Sign election on the unweighted tasks, then mean of the weighted agreeing entries.</summary>
    public static double[] Ties(double[][] tasks, double[] w, bool frequency)
    {
        var n = tasks[0].Length;
        var result = new double[n];
        for (var j = 0; j < n; j++)
        {
            double tally = 0;
            foreach (var t in tasks)
                tally += frequency ? Math.Sign(t[j]) : t[j];
            var elected = tally >= 0 ? 1 : -1;
            double sum = 0;
            var count = 0;
            for (var i = 0; i < tasks.Length; i++)
            {
                if (Math.Sign(tasks[i][j]) != elected) continue;
                sum += w[i] * tasks[i][j];
                count++;
            }
            result[j] = sum / Math.Max(count, 1);
        }
        return result;
    }
}
