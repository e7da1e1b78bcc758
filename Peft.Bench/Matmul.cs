using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Bench;

/// <summary>The machine's dense matmul rate (GFLOP/s), measured in the same process as the model numbers.</summary>
public static class Matmul
{
    public static double GflopsPerSecond(int n = 2048, int repeats = 8, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.randn([n, n], dtype);
        var b = torch.randn([n, n], dtype);
        using (torch.no_grad()) torch.mm(a, b).Dispose(); // warm-up
        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            using (torch.no_grad()) torch.mm(a, b).Dispose();
            times.Add(sw.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / Stats.Median(times) / 1e9;
    }
}
