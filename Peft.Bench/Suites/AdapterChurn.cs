using System.Text.Json.Nodes;
using Peft.Training.Models;
using Peft.Training.Training;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;

namespace Peft.Bench.Suites;

/// <summary>
/// Whether dropping adapters gives their native memory back: loads an adapter folder under a new name and deletes it
/// again, many times, on one model (what a server hosting many adapters does). Runs in its own process so the RSS is
/// this loop's alone. RSS is read after handing freed heap pages back to the OS (<see cref="NativeHeap.Trim"/>), so
/// what remains is memory still referenced, not glibc's free lists; the .NET garbage collector is never invoked, so
/// tensors left to finalizers would show up as growth.
/// </summary>
public static class AdapterChurn
{
    public static JsonObject RunRow(JsonObject spec)
    {
        string modelDir = spec["model"]!.GetValue<string>();
        int count = spec["adapters"]!.GetValue<int>();
        const int Settle = 10;
        if (count <= Settle) throw new ArgumentException($"adapters must be more than {Settle}");
        string dir = Path.Combine(Path.GetTempPath(), "peft-adapter-churn-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var model = AutoModel.FromPretrained(modelDir);
            // LoRA on linear and embedding layers plus a full trainable copy of the head (modules_to_save), so every
            // kind of adapter tensor is created and dropped; B starts at zero, so merging leaves the base unchanged.
            var config = new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = StringOrList.Of("q_proj", "v_proj", "embed_tokens"), ModulesToSave = ["lm_head"] };
            using (var first = PeftModel.Create(model, config, seed: 0))
            {
                first.SavePretrained(dir);
                first.Unload();
            }
            double afterSettle = 0;
            for (int i = 0; i < count; i++)
            {
                // Every way an adapter leaves a model: deleted, unloaded, merged and unloaded, disposed with its model.
                if (i % 4 == 3)
                {
                    using var own = PeftModel.FromPretrained(AutoModel.FromPretrained(modelDir), dir);
                }
                else
                {
                    using var peft = PeftModel.FromPretrained(model, dir);
                    peft.LoadAdapter(dir, "extra");
                    peft.SetAdapter("extra");
                    peft.DeleteAdapter("extra");
                    if (i % 4 == 1) peft.MergeAndUnload();
                    else peft.Unload();
                }
                if (i + 1 == Settle) afterSettle = SettledRssMb();
            }
            double afterAll = SettledRssMb();
            return new JsonObject
            {
                ["kind"] = "adapter-churn", ["model"] = modelDir, ["adapters"] = count,
                ["adapter MB"] = Math.Round(new FileInfo(Path.Combine(dir, PeftModel.WeightsFileName)).Length / 1e6, 2),
                ["rss_after_10_mb"] = Math.Round(afterSettle, 1), ["rss_after_all_mb"] = Math.Round(afterAll, 1),
                ["growth_mb"] = Math.Round(afterAll - afterSettle, 1),
            };
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    private static double SettledRssMb()
    {
        NativeHeap.Trim();
        return ProcessMemory.CurrentRssMb();
    }
}
