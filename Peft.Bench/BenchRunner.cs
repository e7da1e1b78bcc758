using System.Text.Json.Nodes;
using Peft.Bench.Suites;
using TorchSharp;

namespace Peft.Bench;

/// <summary>Runs the suites of <c>peft bench</c> and the single measurements its child processes perform.</summary>
public static class BenchRunner
{
    public static readonly string[] Suites = ["train", "adapter", "infer", "load", "quant", "serve"];

    public static BenchReport Run(IReadOnlyList<string> suites, BenchOptions options, ChildRunner child, TextWriter progress)
    {
        foreach (var s in suites)
            if (!Suites.Contains(s)) throw new PeftUserException($"unknown benchmark suite '{s}' (train, adapter, infer, load, quant, serve, all)");
        if (options.Threads is int t) torch.set_num_threads(t);
        var report = new BenchReport { Machine = MachineInfo.Current(), Quick = options.Quick };
        progress.WriteLine("measuring matmul throughput...");
        double gflops = Matmul.GflopsPerSecond(options.Quick ? 512 : 2048);
        var machine = new BenchTable("machine", "Machine", "measure", "value");
        machine.Add(new JsonObject { ["measure"] = "fp32 matmul (torch.mm, GFLOP/s)", ["value"] = Math.Round(gflops, 1) });
        machine.Add(new JsonObject { ["measure"] = "bf16 matmul (torch.mm, GFLOP/s)", ["value"] = Math.Round(Peft.Training.Training.MatmulRate.Measure(torch.ScalarType.BFloat16, TimeSpan.FromSeconds(2)), 1) });
        report.Tables.Add(machine);
        foreach (var s in suites)
        {
            progress.WriteLine($"suite {s}...");
            report.Tables.Add(s switch
            {
                "train" => TrainSuite.Run(options, child, gflops),
                "adapter" => AdapterSuite.Run(options),
                "infer" => InferSuite.Run(options),
                "quant" => QuantSuite.Run(options, child),
                "serve" => ServeSuite.Run(options),
                _ => LoadSuite.Run(options, child),
            });
        }
        if (Claims.Check(report) is { } claims) report.Tables.Add(claims);
        return report;
    }

    /// <summary>Child-process entry: performs one measurement described by <paramref name="spec"/>.</summary>
    public static JsonObject RunRow(JsonObject spec)
    {
        if (spec["threads"] is JsonValue tv && tv.TryGetValue<int>(out var threads)) torch.set_num_threads(threads);
        try
        {
            return spec["kind"]?.GetValue<string>() switch
            {
                "train" => TrainSuite.RunRow(spec),
                "load" => LoadSuite.RunRow(spec),
                "quant" => QuantSuite.RunRow(spec),
                "adapter-churn" => AdapterChurn.RunRow(spec),
                var k => throw new ArgumentException($"unknown row kind '{k}'"),
            };
        }
        catch (Exception e) when (e is not ArgumentException)
        {
            return new JsonObject { ["error"] = $"{e.GetType().Name}: {e.Message}" };
        }
    }
}
