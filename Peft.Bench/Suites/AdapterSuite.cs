using System.Diagnostics;
using System.Text.Json.Nodes;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;

namespace Peft.Bench.Suites;

/// <summary>Adapter file size against the base model, save/load times, merge/unmerge times, per method.</summary>
public static class AdapterSuite
{
    public static BenchTable Run(BenchOptions o)
    {
        string cfg = o.Configs?.FirstOrDefault() ?? (o.Quick ? "tiny10m" : "base120m");
        var table = new BenchTable("adapter", $"Adapter files and merging ({cfg}, fp32 base)",
            "method", "trainable", "trainable %", "adapter MB", "base MB", "adapter/base %", "save ms", "load ms", "merge ms", "unmerge ms");
        string dir = Path.Combine(Path.GetTempPath(), "peft-bench-adapter-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var model = AutoModel.FromConfig(BenchConfigs.Resolve(cfg));
            model.InitWeights(0);
            model.SavePretrained(Path.Combine(dir, "base"));
            double baseMb = new FileInfo(Path.Combine(dir, "base", "model.safetensors")).Length / 1e6;
            var methods = o.Methods ?? BenchMethods.All.Keys.Where(m => m != "full").ToList();
            foreach (var method in methods)
            {
                var config = BenchMethods.Create(method);
                if (config is null) continue;
                table.Add(Measure(model, method, config, Path.Combine(dir, method), baseMb));
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
        table.Notes.Add("Adapter files are float32 safetensors as PEFT writes them; base size is the fp32 model.safetensors.");
        return table;
    }

    private static JsonObject Measure(PretrainedModel model, string method, PeftConfig config, string dir, double baseMb)
    {
        var peft = PeftModel.Create(model, config, seed: 1);
        var (trainable, all) = peft.GetNbTrainableParameters();
        var sw = Stopwatch.StartNew();
        peft.SavePretrained(dir);
        double saveMs = sw.Elapsed.TotalMilliseconds;
        double adapterMb = new FileInfo(Path.Combine(dir, PeftModel.WeightsFileName)).Length / 1e6;
        sw.Restart();
        peft.LoadAdapter(dir, "reloaded");
        double loadMs = sw.Elapsed.TotalMilliseconds;
        double? mergeMs = null, unmergeMs = null;
        if (peft.Tuner.CanMerge)
        {
            sw.Restart();
            peft.MergeAdapter();
            mergeMs = sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            peft.UnmergeAdapter();
            unmergeMs = sw.Elapsed.TotalMilliseconds;
        }
        peft.Unload(); // leaves the shared base model as it was for the next method
        return new JsonObject
        {
            ["method"] = method, ["trainable"] = trainable, ["trainable %"] = Math.Round(100.0 * trainable / all, 4),
            ["adapter MB"] = Math.Round(adapterMb, 3), ["base MB"] = Math.Round(baseMb, 1),
            ["adapter/base %"] = Math.Round(100 * adapterMb / baseMb, 3),
            ["save ms"] = Math.Round(saveMs, 1), ["load ms"] = Math.Round(loadMs, 1),
            ["merge ms"] = mergeMs is null ? null : Math.Round(mergeMs.Value, 1),
            ["unmerge ms"] = unmergeMs is null ? null : Math.Round(unmergeMs.Value, 1),
        };
    }
}
