using System.CommandLine;
using System.Globalization;
using Peft.Cli.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft params &lt;model_dir&gt; [--adapter-config FILE]</c>: parameter counts from config.json alone. The model is
/// built on the meta device, so no weights are read and no memory is allocated, even for billion-parameter models.
/// </summary>
internal static class ParamsCommand
{
    public static Command Create(CliContext ctx)
    {
        var modelDir = new Argument<string>("model_dir") { Description = "Model folder with config.json (weights are not read)" };
        var adapterConfig = new Option<string?>("--adapter-config")
        {
            Description = "adapter_config.json (or its folder): also print PEFT's trainable-parameter summary",
            HelpName = "FILE",
        };
        var cmd = new Command("params", "Count base and adapter parameters without loading weights") { modelDir, adapterConfig };
        cmd.SetAction(p => Execute(ctx, p.GetValue(modelDir)!, p.GetValue(adapterConfig)));
        return cmd;
    }

    private static int Execute(CliContext ctx, string modelDir, string? adapterConfigPath)
    {
        var config = ModelLoading.LoadConfig(modelDir);
        // Parse the adapter config before building anything, so a bad file fails fast.
        var peftConfig = adapterConfigPath is null ? null : PeftConfigs.Load(adapterConfigPath);
        var model = AutoModel.FromConfig(config, new ModelLoadOptions { Device = torch.META, Task = peftConfig?.TaskType });
        long baseCount = model.UniqueNamedParameters().Sum(p => p.Param.numel());
        ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"model_type: {config.ModelType}"));
        ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"base params: {baseCount:N0}"));
        if (peftConfig is null || adapterConfigPath is null)
        {
            model.Dispose();
            return CliApp.Success;
        }
        // Saved configs say inference_mode=true, which would freeze the adapter and count 0 trainable parameters.
        peftConfig.InferenceMode = false;
        PeftModel peft;
        try
        {
            peft = PeftModel.Create(model, peftConfig);
        }
        catch (PeftConfigException e) when (!e.Message.Contains(adapterConfigPath, StringComparison.Ordinal))
        {
            model.Dispose();
            throw new PeftConfigException($"{adapterConfigPath}: {e.Message}");
        }
        catch
        {
            model.Dispose();
            throw;
        }
        using (peft) ctx.Out.WriteLine(peft.TrainableParametersSummary());
        return CliApp.Success;
    }
}
