using Peft.Training.Models;
using Peft.Training.Tuners;

namespace Peft.Cli.Support;

/// <summary>Loading steps shared by the commands, with errors that name the offending file.</summary>
internal static class ModelLoading
{
    /// <summary>config.json of a model folder; a missing folder is reported as such, not as a missing config.json.</summary>
    public static ModelConfig LoadConfig(string modelDir)
    {
        if (!Directory.Exists(modelDir)) throw new PeftUserException($"{modelDir}: model folder not found", UserErrorKind.NotFound);
        return ModelConfig.FromFolder(modelDir);
    }

    /// <summary>
    /// Parses every adapter config up front, so a bad config fails before the slow weight load. Returns the task
    /// of the first one (it decides which head the base model gets, like AutoPeftModel).
    /// </summary>
    public static TaskType? CheckAdapterConfigs(IReadOnlyList<AdapterSpec> adapters)
    {
        TaskType? task = null;
        foreach (var a in adapters)
        {
            var cfg = PeftConfigs.Load(a.ConfigPath);
            if (a == adapters[0]) task = cfg.TaskType;
        }
        return task;
    }

    /// <summary>Loads the model weights (float32, eval mode) with a progress indication.</summary>
    public static PretrainedModel LoadModel(CliContext ctx, string modelDir, TaskType? task, Peft.Training.Quantization.QuantizationConfig? quantization = null)
    {
        LoadConfig(modelDir);
        var model = ctx.Step($"Loading {modelDir}", () => AutoModel.FromPretrained(modelDir, new ModelLoadOptions { Task = task, Quantization = quantization }));
        model.eval();
        return model;
    }

    /// <summary>
    /// Wraps <paramref name="model"/> with the adapters: the first via PeftModel.FromPretrained (and active), the
    /// others via LoadAdapter. Takes ownership of the model: it is disposed if anything fails.
    /// </summary>
    public static PeftModel AttachAdapters(CliContext ctx, PretrainedModel model, IReadOnlyList<AdapterSpec> adapters)
    {
        if (adapters.Count == 0) throw new InvalidOperationException("no adapters to attach");
        PeftModel? peft = null;
        try
        {
            foreach (var a in adapters)
            {
                NamingConfig(a, () =>
                {
                    if (peft is null) peft = ctx.Step($"Loading adapter {a.Dir}", () => PeftModel.FromPretrained(model, a.Dir, a.Name));
                    else ctx.Step($"Loading adapter {a.Dir}", () => peft.LoadAdapter(a.Dir, a.Name));
                });
            }
            return peft!;
        }
        catch
        {
            if (peft is not null) peft.Dispose();
            else model.Dispose();
            throw;
        }
    }

    /// <summary>Tuner errors (e.g. target modules not found) do not know the file; prefix the adapter config path.</summary>
    private static void NamingConfig(AdapterSpec adapter, Action action)
    {
        try
        {
            action();
        }
        catch (PeftConfigException e) when (!e.Message.Contains(adapter.ConfigPath, StringComparison.Ordinal))
        {
            throw new PeftConfigException($"{adapter.ConfigPath}: {e.Message}");
        }
    }
}
