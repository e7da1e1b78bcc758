using System.CommandLine;
using Peft.Cli.Support;
using Peft.Training.Models;
using Peft.Training.Quantization;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft quantize &lt;model_dir&gt; --method nf4|fp4|int8 [--double-quant] [--compute-dtype D] --out DIR</c>: writes the
/// model in the layout transformers + bitsandbytes save a quantised model in (packed weights + quant state tensors,
/// <c>quantization_config</c> in config.json), plus the tokenizer files. Loading the folder back gives the same
/// dequantised weights bit for bit.
/// </summary>
internal static class QuantizeCommand
{
    public static Command Create(CliContext ctx)
    {
        var modelDir = new Argument<string>("model_dir") { Description = "Model folder (config.json + model.safetensors)" };
        var method = new Option<string>("--method") { Description = "nf4, fp4 or int8", HelpName = "nf4|fp4|int8", Required = true };
        var dq = new Option<bool>("--double-quant") { Description = "nf4/fp4: double-quantise the per-block absmax values" };
        var compute = new Option<string?>("--compute-dtype") { Description = "bnb_4bit_compute_dtype recorded in config.json (default: the model's dtype)", HelpName = "float32|bfloat16|float16" };
        var output = new Option<string>("--out") { Description = "Folder for the quantised model", HelpName = "DIR", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace --out if it exists and is not empty" };
        var cmd = new Command("quantize", "Quantise a model's linear weights and save it in the bitsandbytes layout") { modelDir, method, dq, compute, output, force };
        cmd.SetAction(p =>
        {
            var q = QuantizeOptions.Build(p.GetValue(method), p.GetValue(dq), "--method")!;
            if (p.GetValue(compute) is { } cd)
            {
                try { q = q with { ComputeDType = DTypes.FromHfName(cd) }; }
                catch (ArgumentException e) { throw new UsageException($"--compute-dtype: {e.Message}"); }
            }
            return Execute(ctx, p.GetValue(modelDir)!, q, p.GetValue(output)!, p.GetValue(force));
        });
        return cmd;
    }

    private static int Execute(CliContext ctx, string modelDir, QuantizationConfig q, string outDir, bool force)
    {
        var config = ModelLoading.LoadConfig(modelDir);
        if (QuantizationConfig.FromModelConfig(config) is not null)
            throw new UsageException($"{modelDir}: config.json already has a quantization_config (the model is quantised)");
        using var output = OutputFolder.Begin(outDir, force, [modelDir]);
        // Non-quantised weights keep the checkpoint's dtype (a bf16 model's embeddings stay bf16 on disk).
        var dtype = DTypes.FromHfName(config.GetString("torch_dtype"));
        using var model = ctx.Step($"Loading {modelDir}", () => AutoModel.FromPretrained(modelDir, new ModelLoadOptions { DType = dtype, Quantization = q }));
        int layers = QuantizedLoading.QuantisedLayers(model).Count;
        ctx.Step($"Writing {outDir}", () => { model.SavePretrained(output.TempPath); return 0; });
        var copied = MergeCommand.CopyTokenizerFiles(modelDir, output.TempPath);
        output.Commit();
        ctx.Out.WriteLine($"quantised {layers} linear layers of {modelDir} to {QuantizationConfig.MethodName(q.Method)}{(q.DoubleQuant ? " + double quant" : "")}: "
            + $"{QuantizedLoading.BaseWeightBytes(model):N0} bytes of base weights -> {outDir} (config.json, model.safetensors{string.Concat(copied.Select(c => ", " + c))})");
        return CliApp.Success;
    }
}
