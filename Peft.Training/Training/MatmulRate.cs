using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Training;

/// <summary>
/// How fast this CPU multiplies matrices in a dtype, measured within a time budget. libtorch's bf16 matmul runs at
/// 0.3 GFLOP/s on CPUs without native bf16 (AVX2-only) against ~140 in fp32, so a fixed-size probe there takes minutes;
/// this one grows the size from 128 and stops before the next size would overrun the budget.
/// </summary>
public static class MatmulRate
{
    /// <summary>bf16 must reach this fraction of the fp32 rate to be worth choosing.</summary>
    public const double MinBf16Ratio = 0.5;

    /// <summary>GFLOP/s of <c>torch.mm</c> on square <paramref name="dtype"/> matrices (at most <paramref name="maxN"/>).</summary>
    public static double Measure(ScalarType dtype, TimeSpan budget, int maxN = 2048)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var total = Stopwatch.StartNew();
        double rate = 0;
        for (int n = 128; ; n *= 2)
        {
            var a = torch.randn([n, n]).to(dtype);
            var b = torch.randn([n, n]).to(dtype);
            var sw = Stopwatch.StartNew();
            torch.mm(a, b).Dispose();
            double s = Math.Max(sw.Elapsed.TotalSeconds, 1e-9);
            rate = 2.0 * n * n * n / s / 1e9;
            // The next size costs 8× this one.
            if (2 * n > maxN || total.Elapsed.TotalSeconds + 8 * s > budget.TotalSeconds) return rate;
        }
    }

    /// <summary>Whether bf16 compute pays here, from measured rates (GFLOP/s).</summary>
    public static bool Bf16Worthwhile(double fp32Gflops, double bf16Gflops) => bf16Gflops >= MinBf16Ratio * fp32Gflops;

    /// <summary>Probes both dtypes (about a second each at most) and decides; the rates are returned for the warning.</summary>
    public static (bool Worthwhile, double Fp32, double Bf16) ProbeBf16(TimeSpan? budget = null)
    {
        var b = budget ?? TimeSpan.FromSeconds(1);
        double fp32 = Measure(ScalarType.Float32, b), bf16 = Measure(ScalarType.BFloat16, b);
        return (Bf16Worthwhile(fp32, bf16), fp32, bf16);
    }
}
