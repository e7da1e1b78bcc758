using System.CommandLine;
using Peft.Cli.Support;
using Peft.Training.Models;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft merge &lt;model_dir&gt; --adapter DIR --out DIR [--force]</c>: merge_and_unload, saved as a plain Hugging Face
/// model folder (config.json + model.safetensors + the tokenizer files of the base, if any).
/// </summary>
internal static class MergeCommand
{
    /// <summary>Files a tokenizer/generation pipeline needs next to the weights; copied verbatim when present.</summary>
    internal static readonly string[] CopiedFiles =
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"];

    /// <summary>Copies <see cref="CopiedFiles"/> that exist from <paramref name="modelDir"/>; returns their names.</summary>
    internal static List<string> CopyTokenizerFiles(string modelDir, string target)
    {
        var copied = new List<string>();
        foreach (var name in CopiedFiles)
        {
            string src = Path.Combine(modelDir, name);
            if (!File.Exists(src)) continue;
            File.Copy(src, Path.Combine(target, name));
            copied.Add(name);
        }
        return copied;
    }

    public static Command Create(CliContext ctx)
    {
        var modelDir = new Argument<string>("model_dir") { Description = "Base model folder" };
        var adapter = new Option<string>("--adapter") { Description = "Adapter folder to merge", HelpName = "DIR", Required = true };
        var output = new Option<string>("--out") { Description = "Folder for the merged model", HelpName = "DIR", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace --out if it exists and is not empty" };
        var cmd = new Command("merge", "Merge an adapter into the base weights and save a standalone model") { modelDir, adapter, output, force };
        cmd.SetAction(p => Execute(ctx, p.GetValue(modelDir)!, AdapterSpec.Parse(p.GetValue(adapter)!), p.GetValue(output)!, p.GetValue(force)));
        return cmd;
    }

    private static int Execute(CliContext ctx, string modelDir, AdapterSpec adapter, string outDir, bool force)
    {
        var config = ModelLoading.LoadConfig(modelDir);
        var task = ModelLoading.CheckAdapterConfigs([adapter]);
        using var output = OutputFolder.Begin(outDir, force, [modelDir, adapter.Dir]);
        var model = ModelLoading.LoadModel(ctx, modelDir, task);
        // A quantised base (bitsandbytes folder) is dequantised first: the adapter then merges exactly and the
        // output is a full-precision model (merging into 4-bit weights would requantise, which is lossy).
        if (Peft.Training.Quantization.QuantizedLoading.QuantisedLayers(model).Count > 0)
            Peft.Training.Quantization.QuantizedLoading.Dequantize(model, TorchSharp.torch.ScalarType.Float32);
        var peft = ModelLoading.AttachAdapters(ctx, model, [adapter]);
        using (peft)
        {
            using var merged = peft.MergeAndUnload();
            // Merge in float32, store in the checkpoint's own dtype (a bf16 model stays bf16 on disk).
            var dtype = config.Json["quantization_config"] is null ? DTypes.FromHfName(config.GetString("torch_dtype")) : TorchSharp.torch.ScalarType.Float32;
            ctx.Step($"Writing {outDir}", () => { merged.SavePretrained(output.TempPath, dtype); return 0; });
        }
        var copied = CopyTokenizerFiles(modelDir, output.TempPath);
        output.Commit();
        ctx.Out.WriteLine($"merged {adapter.Dir} into {modelDir} -> {outDir} (config.json, model.safetensors{string.Concat(copied.Select(c => ", " + c))})");
        return CliApp.Success;
    }
}
