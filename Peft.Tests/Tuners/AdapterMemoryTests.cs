using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Peft.Tests.Tuners;

/// <summary>
/// Dropping adapters gives their native memory back: 200 adapters loaded and then deleted, unloaded, merged and
/// unloaded, or disposed with their model, on the demo model, in a child process so the RSS is the loop's own.
/// </summary>
public class AdapterMemoryTests
{
    [Fact]
    public async Task TwoHundredAdaptersLeaveRssFlat()
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "peft.dll");
        string model = Demo.DemoModelTests.RepoPath("models/peft-demo");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // The loop never collects, so its RSS includes the managed heap's youngest generation, whose budget .NET sizes
        // from the L3 cache: 50-60 MB of "growth" on a host with 105 MB of L3, ~30 MB at this fixed 32 MB budget.
        psi.Environment["DOTNET_GCgen0size"] = "0x2000000";
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add("bench-row");
        psi.ArgumentList.Add(new JsonObject { ["kind"] = "adapter-churn", ["model"] = model, ["adapters"] = 200 }.ToJsonString());
        using var process = Process.Start(psi)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, await stderr);
        var result = JsonNode.Parse((await stdout).Trim().Split('\n')[^1])!.AsObject();
        Assert.Null(result["error"]);
        double growth = result["growth_mb"]!.GetValue<double>();
        // Each adapter holds ~8.8 MB (LoRA factors plus a copy of the head): a leak of even a few would exceed this.
        Assert.True(growth < 50, $"RSS grew {growth} MB over 190 adapters ({result.ToJsonString()})");
    }
}
