using System.Diagnostics;
using System.Text.Json.Nodes;
using Peft.Training.Models;
using TorchSharp;

namespace Peft.Bench.Suites;

/// <summary>Model load time and memory: a 1.1B config on the meta device, and a real model from safetensors.</summary>
public static class LoadSuite
{
    public static BenchTable Run(BenchOptions o, ChildRunner child)
    {
        var table = new BenchTable("load", "Model loading (fresh process per row)", "what", "params", "seconds", "peak RSS MB");
        table.Add(child(new JsonObject { ["kind"] = "load", ["mode"] = "meta", ["config"] = "llama1b" }));
        string cfg = o.Quick ? "tiny10m" : "base120m";
        string dir = Path.Combine(Path.GetTempPath(), "peft-bench-load-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var model = AutoModel.FromConfig(BenchConfigs.Resolve(cfg)))
            {
                model.InitWeights(0);
                model.SavePretrained(dir);
            }
            table.Add(child(new JsonObject { ["kind"] = "load", ["mode"] = "safetensors", ["config"] = cfg, ["dir"] = dir }));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
        table.Notes.Add("Peak RSS includes the .NET runtime and libtorch itself (about 150 MB before any model).");
        return table;
    }

    public static JsonObject RunRow(JsonObject spec)
    {
        string mode = spec["mode"]!.GetValue<string>();
        string cfg = spec["config"]!.GetValue<string>();
        var sw = Stopwatch.StartNew();
        using var model = mode == "meta"
            ? AutoModel.FromConfig(BenchConfigs.Resolve(cfg), new ModelLoadOptions { Device = torch.META })
            : AutoModel.FromPretrained(spec["dir"]!.GetValue<string>());
        double seconds = sw.Elapsed.TotalSeconds;
        long n = model.UniqueNamedParameters().Sum(p => p.Param.numel());
        return new JsonObject
        {
            ["what"] = mode == "meta" ? $"{cfg} from config.json on meta" : $"{cfg} fp32 from model.safetensors (mmap)",
            ["params"] = n, ["seconds"] = Math.Round(seconds, 3), ["peak RSS MB"] = Math.Round(ProcessMemory.PeakRssMb(), 0),
        };
    }
}
