using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Bench;

/// <summary>The machine's dense matmul rate (GFLOP/s), measured in the same process as the model numbers.</summary>
public static class Matmul
{
    /// <summary>
    /// Median over up to <paramref name="repeats"/> products of two n×n matrices, stopping early once
    /// <paramref name="budget"/> (default 3 s) is spent, so no probe of the benchmark can run away on a slow CPU.
    /// </summary>
    public static double GflopsPerSecond(int n = 2048, int repeats = 8, ScalarType dtype = ScalarType.Float32, TimeSpan? budget = null)
    {
        var limit = budget ?? TimeSpan.FromSeconds(3);
        using var scope = torch.NewDisposeScope();
        var a = torch.randn([n, n], dtype);
        var b = torch.randn([n, n], dtype);
        var total = Stopwatch.StartNew();
        using (torch.no_grad()) torch.mm(a, b).Dispose(); // warm-up
        // A size whose single product overruns the budget is measured smaller instead (the bf16 case on AVX2-only CPUs).
        if (total.Elapsed > limit && n > 128) return Peft.Training.Training.MatmulRate.Measure(dtype, limit, n / 2);
        var times = new List<double>();
        for (int i = 0; i < repeats && (i == 0 || total.Elapsed < limit); i++)
        {
            var sw = Stopwatch.StartNew();
            using (torch.no_grad()) torch.mm(a, b).Dispose();
            times.Add(sw.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / Stats.Median(times) / 1e9;
    }
}
