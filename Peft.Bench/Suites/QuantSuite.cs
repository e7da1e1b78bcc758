using System.Text.Json.Nodes;
using Peft.Training.Models;
using Peft.Training.Quantization;
using Peft.Training.Training;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Bench.Suites;

/// <summary>
/// Quantised bases (QLoRA): for one model, the bytes its base weights hold, and the peak RSS and tokens/s of a LoRA
/// training step on a float32, bfloat16, int8, NF4 and NF4 + double-quantised base, with full fine-tuning for
/// contrast. The model is written once (random init, float32) and every row loads it from disk in its own process,
/// quantising at load time as users do.
/// </summary>
public static class QuantSuite
{
    // "+bf16" = bfloat16 matmuls on a quantised base (bnb_4bit_compute_dtype, QLoRA's recipe); "gc" = gradient
    // checkpointing, which QLoRA always turns on: compared against bf16 LoRA with and without it.
    public static readonly (string Base, string Method, bool Gc)[] Rows =
        [("fp32", "full", false), ("fp32", "lora_r8", false), ("bf16", "lora_r8", false), ("int8", "lora_r8", false),
         ("nf4", "lora_r8", false), ("nf4_dq", "lora_r8", false), ("nf4+bf16", "lora_r8", false), ("nf4_dq+bf16", "lora_r8", false),
         ("bf16", "lora_r8", true), ("nf4_dq+bf16", "lora_r8", true)];

    public static BenchTable Run(BenchOptions o, ChildRunner child)
    {
        var table = new BenchTable("quant", "Quantised base weights (QLoRA): memory and speed of a LoRA step",
            "config", "base", "method", "checkpointing", "batch×seq", "base weight bytes", "linear bytes / fp32", "tokens/s", "step ms", "RSS before steps MB", "step peak RSS MB", "load peak RSS MB");
        string cfg = o.Configs?.FirstOrDefault() ?? (o.Quick ? "tiny10m" : "small50m");
        var (b, s) = BenchConfigs.DefaultShape(cfg);
        string dir = Path.Combine(Path.GetTempPath(), "peft-bench-quant-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var model = AutoModel.FromConfig(BenchConfigs.Resolve(cfg)))
            {
                model.InitWeights(0);
                model.SavePretrained(dir);
            }
            foreach (var (kind, method, gc) in Rows)
            {
                var spec = new JsonObject
                {
                    ["kind"] = "quant", ["config"] = cfg, ["dir"] = dir, ["base"] = kind, ["method"] = method, ["gc"] = gc,
                    ["batch"] = o.Batch ?? (o.Quick ? 2 : b), ["seq"] = o.Seq ?? (o.Quick ? 64 : s),
                    ["warmup"] = o.WarmupSteps, ["steps"] = o.TimedSteps, ["threads"] = o.Threads,
                };
                var r = child(spec);
                if (r["error"] is { } err) { table.Notes.Add($"{cfg}/{kind}/{method}: {err}"); continue; }
                table.Add(r);
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
        table.Notes.Add("base weight bytes: every parameter and quantisation buffer of the base model (embeddings, norms and the head stay float32; bf16 is all bfloat16). "
            + "linear bytes / fp32: the quantised linear weights (packed codes + absmax + nested absmax) over the same weights in float32.");
        table.Notes.Add("step peak RSS: the process's peak resident memory over the training steps only (VmHWM reset after loading); load peak RSS: the peak while loading and quantising. "
            + "Both include the .NET runtime and libtorch. Quantised rows dequantise each weight per matmul (forward and again in backward), which costs time on a CPU.");
        return table;
    }

    /// <summary>Child-process side of one row.</summary>
    public static JsonObject RunRow(JsonObject spec)
    {
        string dir = spec["dir"]!.GetValue<string>(), kind = spec["base"]!.GetValue<string>(), method = spec["method"]!.GetValue<string>();
        int batch = spec["batch"]!.GetValue<int>(), seq = spec["seq"]!.GetValue<int>();
        int warmup = spec["warmup"]!.GetValue<int>(), steps = spec["steps"]!.GetValue<int>();
        bool gc = spec["gc"]?.GetValue<bool>() ?? false;
        bool bf16Compute = kind.EndsWith("+bf16", StringComparison.Ordinal);
        QuantizationConfig? q = kind.Replace("+bf16", "") switch
        {
            "fp32" or "bf16" => null,
            "int8" => new QuantizationConfig { Method = QuantMethod.Int8 },
            "nf4" => new QuantizationConfig { Method = QuantMethod.Nf4 },
            "nf4_dq" => new QuantizationConfig { Method = QuantMethod.Nf4, DoubleQuant = true },
            _ => throw new ArgumentException($"unknown base '{kind}' (fp32, bf16, int8, nf4, nf4_dq; +bf16 on a quantised one)"),
        };
        if (q is not null && bf16Compute) q = q with { ComputeDType = ScalarType.BFloat16 };
        using var model = AutoModel.FromPretrained(dir, new ModelLoadOptions { DType = kind == "bf16" ? ScalarType.BFloat16 : null, Quantization = q });
        if (q is not null) KbitTraining.PrepareForKbitTraining(model, useGradientCheckpointing: gc);
        double loadPeak = ProcessMemory.PeakRssMb();
        long baseBytes = QuantizedLoading.BaseWeightBytes(model);
        var layers = QuantizedLoading.QuantisedLayers(model);
        double linearRatio = layers.Count == 0 ? (kind == "bf16" ? 0.5 : 1.0)
            : layers.Values.Sum(l => (double)l.Quantized!.StorageBytes) / layers.Values.Sum(l => 4.0 * l.InFeatures * l.OutFeatures);
        var peftConfig = BenchMethods.Create(method);
        using var peft = peftConfig is null ? null : PeftModel.Create(model, peftConfig, seed: 0);
        var trainable = peft is null ? TrainableModel.ForFullFineTune(model) : TrainableModel.ForAdapter(peft);
        ProcessMemory.ResetPeak();
        double startRss = ProcessMemory.CurrentRssMb();   // what the model (and loading's leftovers) hold before the steps
        var (durations, peakRss, _) = TrainSuite.TimeSteps(trainable, model.VocabSize, batch, seq, warmup, steps, gc);
        double stepS = Stats.Median(durations);
        return new JsonObject
        {
            ["config"] = spec["config"]!.GetValue<string>(), ["base"] = kind, ["method"] = method, ["checkpointing"] = gc ? "yes" : "no", ["batch×seq"] = $"{batch}×{seq}",
            ["base weight bytes"] = baseBytes, ["linear bytes / fp32"] = Math.Round(linearRatio, 4),
            ["tokens/s"] = Math.Round(batch * seq / stepS, 1), ["step ms"] = Math.Round(stepS * 1000, 1),
            ["RSS before steps MB"] = Math.Round(startRss, 0), ["step peak RSS MB"] = Math.Round(peakRss, 0), ["load peak RSS MB"] = Math.Round(loadPeak, 0),
        };
    }
}
