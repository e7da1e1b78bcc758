using System.CommandLine;
using System.Text.Json.Nodes;
using Peft.Cli.Support;
using Peft.Training.Models;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft model init</c> (a randomly initialised HF model folder from a config.json, e.g. to pretrain with
/// <c>peft train --method full</c>) and <c>peft model convert</c> (store a model folder in another dtype, e.g. bf16).
/// Both write into a temporary folder renamed into place.
/// </summary>
internal static class ModelCommand
{
    public static Command Create(CliContext ctx)
    {
        var cmd = new Command("model", "Create a randomly initialised model folder or convert one to another dtype");
        cmd.Subcommands.Add(Init(ctx));
        cmd.Subcommands.Add(Convert(ctx));
        return cmd;
    }

    private static Command Init(CliContext ctx)
    {
        var config = new Option<string>("--config") { Description = "config.json to build from", HelpName = "FILE", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Folder whose tokenizer files are copied next to the weights", HelpName = "DIR" };
        var seed = new Option<long>("--seed") { Description = "Initialisation seed", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "Model folder to create", HelpName = "DIR", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace --out if it exists and is not empty" };
        var cmd = new Command("init", "Write a randomly initialised model (transformers' _init_weights) from a config.json") { config, tokenizer, seed, output, force };
        cmd.SetAction(p =>
        {
            string configPath = p.GetValue(config)!, outDir = p.GetValue(output)!;
            string? tokDir = p.GetValue(tokenizer);
            var modelConfig = ModelConfig.Load(configPath);
            if (tokDir is not null && !File.Exists(Path.Combine(tokDir, "tokenizer.json")))
                throw new PeftUserException($"{Path.Combine(tokDir, "tokenizer.json")}: --tokenizer folder has no tokenizer.json", UserErrorKind.NotFound);
            using var folder = OutputFolder.Begin(outDir, p.GetValue(force), tokDir is null ? [] : [tokDir]);
            using var model = AutoModel.FromConfig(modelConfig);
            model.InitWeights(p.GetValue(seed));
            var dtype = DTypes.FromHfName(modelConfig.GetString("torch_dtype"));
            model.SavePretrained(folder.TempPath, dtype);
            if (tokDir is not null) CopyFiles(tokDir, folder.TempPath);
            WriteGenerationConfig(modelConfig, folder.TempPath);
            folder.Commit();
            long n = model.UniqueNamedParameters().Sum(x => x.Param.numel());
            ctx.Out.WriteLine($"initialised {modelConfig.ModelType} with {n:N0} parameters (seed {p.GetValue(seed)}) -> {outDir}");
            return CliApp.Success;
        });
        return cmd;
    }

    private static Command Convert(CliContext ctx)
    {
        var modelDir = new Argument<string>("model_dir") { Description = "Model folder" };
        var dtype = new Option<string>("--dtype") { Description = "float32, bfloat16 or float16", Required = true };
        var output = new Option<string>("--out") { Description = "Folder for the converted model", HelpName = "DIR", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace --out if it exists and is not empty" };
        var cmd = new Command("convert", "Store a model folder's weights in another dtype") { modelDir, dtype, output, force };
        cmd.SetAction(p =>
        {
            string dir = p.GetValue(modelDir)!, outDir = p.GetValue(output)!;
            var target = DTypes.FromHfName(p.GetValue(dtype));
            using var folder = OutputFolder.Begin(outDir, p.GetValue(force), [dir]);
            using var model = ModelLoading.LoadModel(ctx, dir, null);
            model.SavePretrained(folder.TempPath, target);
            CopyFiles(dir, folder.TempPath);
            folder.Commit();
            ctx.Out.WriteLine($"converted {dir} to {DTypes.ToHfName(target)} -> {outDir}");
            return CliApp.Success;
        });
        return cmd;
    }

    private static void CopyFiles(string from, string to)
    {
        foreach (var name in MergeCommand.CopiedFiles)
            if (File.Exists(Path.Combine(from, name))) File.Copy(Path.Combine(from, name), Path.Combine(to, name), overwrite: true);
    }

    /// <summary>generation_config.json with the config's special token ids (what transformers writes for a new model).</summary>
    private static void WriteGenerationConfig(ModelConfig config, string dir)
    {
        var o = new JsonObject { ["_from_model_config"] = true };
        foreach (var key in new[] { "bos_token_id", "eos_token_id", "pad_token_id" })
            if (config.Json[key] is { } v) o[key] = v.DeepClone();
        File.WriteAllText(Path.Combine(dir, "generation_config.json"), o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }
}
