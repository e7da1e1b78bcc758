using System.Diagnostics;
using Peft.Training.IO;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Peft.Tests.IO;

public class SafetensorsPerfTests(ITestOutputHelper output)
{
    [Fact]
    public void LargeTensor_SavesAndLoadsQuickly()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        const long elements = 50_000_000; // 200 MB of F32
        var big = torch.rand(elements);
        var path = dir.File("big.safetensors");

        var watch = Stopwatch.StartNew();
        Safetensors.Save(path, [new("big", big)]);
        var save = watch.Elapsed;

        using var file = SafetensorsFile.Open(path);
        watch.Restart();
        var loaded = file.Load("big");
        var load = watch.Elapsed;
        watch.Restart();
        var mapped = file.LoadMapped("big");
        var map = watch.Elapsed;

        Assert.True(big.Equals(loaded));
        Assert.True(big.Equals(mapped));
        output.WriteLine($"200 MB F32: save {save.TotalMilliseconds:F0} ms (incl. fsync), " +
                         $"load {load.TotalMilliseconds:F0} ms, LoadMapped {map.TotalMilliseconds:F1} ms");
        // Generous bound for a shared 2-core CI box; typical numbers are in the output above.
        Assert.True(load < TimeSpan.FromSeconds(3), $"Load took {load}");
    }
}
