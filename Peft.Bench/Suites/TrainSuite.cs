using System.Diagnostics;
using System.Text.Json.Nodes;
using Peft.Training.Models;
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
            "config", "method", "gc", "batch×seq", "trainable", "trainable %", "tokens/s", "step ms", "peak RSS MB", "MFU");
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
            r["MFU"] = Math.Round(100 * r["model_flops_per_token"]!.GetValue<double>() * r["tokens_per_s"]!.GetValue<double>() / (gflops * 1e9), 1) + "%";
            table.Add(r);
        }
        table.Notes.Add($"MFU = model FLOPs/token (full: 6N; frozen base: 4N + 4·layers·seq·hidden; N without the input embedding) × tokens/s ÷ measured fp32 matmul rate ({gflops:F0} GFLOP/s).");
        return table;
    }

    /// <summary>Child-process side: one row.</summary>
    public static JsonObject RunRow(JsonObject spec)
    {
        string cfgName = spec["config"]!.GetValue<string>();
        string method = spec["method"]!.GetValue<string>();
        bool gc = spec["gc"]!.GetValue<bool>();
        int batch = spec["batch"]!.GetValue<int>(), seq = spec["seq"]!.GetValue<int>();
        int warmup = spec["warmup"]!.GetValue<int>(), steps = spec["steps"]!.GetValue<int>();
        var config = BenchConfigs.Resolve(cfgName);
        var model = AutoModel.FromConfig(config);
        model.InitWeights(0);
        if (gc && !EnableGradientCheckpointing(model)) return new JsonObject { ["error"] = "gradient checkpointing is not available" };
        PeftModel? peft = null;
        var peftConfig = BenchMethods.Create(method);
        if (peftConfig is not null) peft = PeftModel.Create(model, peftConfig, seed: 0);
        model.train();
        var trainable = model.parameters().Where(p => p.requires_grad).ToList();
        long nTrainable = trainable.Sum(p => p.numel());
        long nAll = model.UniqueNamedParameters().Sum(p => p.Param.numel());
        var optimizer = torch.optim.AdamW(trainable, lr: 1e-4);
        var gen = new Generator(0);
        var ids = torch.randint(0, model.VocabSize, [batch, seq], generator: gen);
        var times = new List<double>();
        for (int step = 0; step < warmup + steps; step++)
        {
            var sw = Stopwatch.StartNew();
            using (var scope = torch.NewDisposeScope())
            {
                var args = new ForwardArgs { InputIds = ids };
                using var output = peft is null ? model.Forward(args) : peft.Forward(args);
                var logits = output.Logits.narrow(1, 0, seq - 1);
                var loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[2]), ids.narrow(1, 1, seq - 1).reshape(-1));
                if (peft?.Tuner is ITrainingAwareTuner aware && aware.ExtraLoss() is { } extra) loss = loss + extra;
                loss.backward();
                optimizer.step();
                if (peft?.Tuner is ITrainingAwareTuner hook) hook.OnOptimizerStep(step);
                optimizer.zero_grad();
            }
            if (step >= warmup) times.Add(sw.Elapsed.TotalSeconds);
        }
        double stepS = Stats.Median(times);
        long nNoEmbed = nAll - (long)model.VocabSize * model.HiddenSize - (peft is null ? 0 : nTrainable);
        double flops = peft is null ? 6.0 * nNoEmbed : 4.0 * nNoEmbed + 4.0 * model.NumLayers * seq * model.HiddenSize;
        var result = new JsonObject
        {
            ["config"] = cfgName, ["method"] = method, ["gc"] = gc ? "yes" : "no", ["batch×seq"] = $"{batch}×{seq}",
            ["trainable"] = nTrainable, ["all"] = nAll, ["trainable %"] = Math.Round(100.0 * nTrainable / nAll, 4),
            ["tokens_per_s"] = Math.Round(batch * seq / stepS, 1), ["tokens/s"] = Math.Round(batch * seq / stepS, 1),
            ["step ms"] = Math.Round(stepS * 1000, 1), ["peak RSS MB"] = Math.Round(ProcessMemory.PeakRssMb(), 0),
            ["model_flops_per_token"] = flops,
        };
        peft?.Dispose();
        if (peft is null) model.Dispose();
        return result;
    }

    /// <summary>Turns on per-layer gradient checkpointing if this build of the engine has it.</summary>
    private static bool EnableGradientCheckpointing(PretrainedModel model)
    {
        var prop = model.GetType().GetProperty("GradientCheckpointing");
        if (prop is null || !prop.CanWrite) return false;
        prop.SetValue(model, true);
        return true;
    }
}
