using System.Text.Json.Nodes;
using Peft.Training.Data;
using Peft.Training.Models;
using Peft.Training.Training;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Bench.Suites;

/// <summary>
/// Training throughput: tokens/s and peak RSS of one optimizer step (forward, causal-LM loss on random ids, backward,
/// AdamW) for full fine-tuning and each PEFT method, with and without gradient checkpointing. Median of the timed steps
/// after warm-up; every row runs in its own process.
/// </summary>
public static class TrainSuite
{
    public static BenchTable Run(BenchOptions o, ChildRunner child, double gflops)
    {
        var table = new BenchTable("train", "Training step (tokens/s, peak RSS)",
            "config", "method", "gc", "batch×seq", "trainable", "trainable %", "tokens/s", "step ms", "peak RSS MB", "matmul GFLOP/s", "MFU");
        var configs = o.Configs ?? (o.Quick ? ["tiny10m"] : ["tiny10m", "small50m", "base120m"]);
        var methods = o.Methods ?? (o.Quick ? ["full", "lora_r8"] : BenchMethods.All.Keys.ToList());
        foreach (var cfg in configs)
        foreach (var method in methods)
        foreach (bool gc in o.Quick ? [false] : new[] { false, true })
        {
            var (b, s) = BenchConfigs.DefaultShape(cfg);
            var spec = new JsonObject
            {
                ["kind"] = "train", ["config"] = cfg, ["method"] = method, ["gc"] = gc,
                ["batch"] = o.Batch ?? (o.Quick ? 2 : b), ["seq"] = o.Seq ?? (o.Quick ? 64 : s),
                ["warmup"] = o.WarmupSteps, ["steps"] = o.TimedSteps, ["threads"] = o.Threads,
            };
            var r = child(spec);
            if (r["error"] is { } err) { table.Notes.Add($"{cfg}/{method}{(gc ? "/gc" : "")}: {err}"); continue; }
            table.Add(r);
        }
        table.Notes.Add("MFU = model FLOPs/token (full: 6N; frozen base: 4N + 4·layers·seq·hidden; N without the input embedding) × tokens/s " +
            $"÷ the fp32 matmul rate measured in the same process just before the row (the run-level figure was {gflops:F0} GFLOP/s).");
        table.Notes.Add("Peak RSS is read after the last timed step, before the trainer's final save; it includes the .NET runtime and libtorch (~650 MB for the smallest rows).");
        table.Notes.Add("Gradient checkpointing is skipped where a KV cache carries the adapter (prefix tuning), as in PEFT.");
        return table;
    }

    /// <summary>Child-process side: one row, run through the project's <see cref="Trainer"/> (what users get).</summary>
    public static JsonObject RunRow(JsonObject spec)
    {
        string cfgName = spec["config"]!.GetValue<string>();
        string method = spec["method"]!.GetValue<string>();
        bool gc = spec["gc"]!.GetValue<bool>();
        int batch = spec["batch"]!.GetValue<int>(), seq = spec["seq"]!.GetValue<int>();
        int warmup = spec["warmup"]!.GetValue<int>(), steps = spec["steps"]!.GetValue<int>();
        var model = AutoModel.FromConfig(BenchConfigs.Resolve(cfgName));
        model.InitWeights(0);
        var peftConfig = BenchMethods.Create(method, plannedSteps: 10 * (warmup + steps));
        using var peft = peftConfig is null ? null : PeftModel.Create(model, peftConfig, seed: 0);
        var trainable = peft is null ? TrainableModel.ForFullFineTune(model) : TrainableModel.ForAdapter(peft);
        long nTrainable = model.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
        long nAll = model.UniqueNamedParameters().Sum(p => p.Param.numel());
        var (durations, peakRss, gflops) = TimeSteps(trainable, model.VocabSize, batch, seq, warmup, steps, gc);
        double stepS = Stats.Median(durations);
        long nNoEmbed = nAll - (long)model.VocabSize * model.HiddenSize - (peft is null ? 0 : nTrainable);
        double flops = peft is null ? 6.0 * nNoEmbed : 4.0 * nNoEmbed + 4.0 * model.NumLayers * seq * model.HiddenSize;
        var result = new JsonObject
        {
            ["config"] = cfgName, ["method"] = method, ["gc"] = gc ? "yes" : "no", ["batch×seq"] = $"{batch}×{seq}",
            ["trainable"] = nTrainable, ["all"] = nAll, ["trainable %"] = Math.Round(100.0 * nTrainable / nAll, 4),
            ["tokens_per_s"] = Math.Round(batch * seq / stepS, 1), ["tokens/s"] = Math.Round(batch * seq / stepS, 1),
            ["step ms"] = Math.Round(stepS * 1000, 1), ["peak RSS MB"] = Math.Round(peakRss, 0),
            ["model_flops_per_token"] = flops, ["matmul GFLOP/s"] = Math.Round(gflops, 0),
            ["MFU"] = Math.Round(100 * flops * batch * seq / stepS / (gflops * 1e9), 1) + "%",
        };
        if (peft is null) model.Dispose();
        return result;
    }

    /// <summary>
    /// Runs warmup + steps optimizer steps through the <see cref="Trainer"/> on random ids (every position a label: the
    /// causal-LM loss of the peer baseline); returns the timed step durations, the peak RSS after the last step and the
    /// fp32 matmul rate measured just before.
    /// </summary>
    internal static (List<double> Durations, double PeakRssMb, double Gflops) TimeSteps(
        TrainableModel trainable, int vocab, int batch, int seq, int warmup, int steps, bool gc)
    {
        var rng = new Random(0);
        var rows = Enumerable.Range(0, batch).Select(_ =>
        {
            var ids = Enumerable.Range(0, seq).Select(_ => (long)rng.Next(vocab)).ToArray();
            return new Example(ids, ids);
        }).ToList();
        string outDir = Path.Combine(Path.GetTempPath(), "peft-bench-train-" + Guid.NewGuid().ToString("N"));
        var stepEnds = new List<double>();
        double peakRss = 0;
        double gflops = Matmul.GflopsPerSecond(1024, 6);
        var options = new TrainingOptions
        {
            OutputDir = outDir, MaxSteps = warmup + steps, BatchSize = batch, LearningRate = 1e-4, Shuffle = false,
            Scheduler = SchedulerKind.Constant, GradientCheckpointing = gc,
        };
        try
        {
            using var trainer = new Trainer(trainable, options, new TrainingDataset(rows, new DatasetStats()),
                progress: new InlineProgress(e =>
                {
                    if (e.Kind != TrainingEventKind.Step) return;
                    stepEnds.Add(e.Elapsed.TotalSeconds);
                    peakRss = ProcessMemory.PeakRssMb(); // before the final checkpoint write inflates it
                }));
            trainer.Train();
        }
        finally
        {
            if (Directory.Exists(outDir)) Directory.Delete(outDir, true);
        }
        var durations = stepEnds.Zip(stepEnds.Skip(1), (a, b) => b - a).Skip(Math.Max(0, warmup - 1)).ToList();
        return (durations, peakRss, gflops);
    }

    /// <summary>Synchronous IProgress (Progress&lt;T&gt; would post to the thread pool and race the timing).</summary>
    private sealed class InlineProgress(Action<TrainingEvent> onEvent) : IProgress<TrainingEvent>
    {
        public void Report(TrainingEvent value) => onEvent(value);
    }
}
