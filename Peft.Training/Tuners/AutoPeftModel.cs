using Peft.Training.Models;

namespace Peft.Training.Tuners;

/// <summary>
/// Loads an adapter folder together with its base model (≈ <c>AutoPeftModelForCausalLM.from_pretrained</c>). The base is
/// found from <c>base_model_name_or_path</c>: an existing path as is, otherwise that name under each model root
/// (the roots passed in, then the adapter's parent folder). No environment variable is read: a host passes its roots
/// (the CLI's default is <c>PEFT_MODEL_ROOT</c>).
/// </summary>
public static class AutoPeftModel
{
    public static PeftModel FromPretrained(string adapterDir, IReadOnlyList<string>? modelRoots = null,
        ModelLoadOptions? options = null, bool isTrainable = false, string adapterName = PeftModel.DefaultAdapterName)
    {
        var config = PeftConfigs.Load(adapterDir);
        string baseDir = ResolveBaseModel(config.BaseModelNameOrPath, adapterDir, modelRoots);
        options ??= new ModelLoadOptions();
        if (options.Task is null && config.TaskType is { } task) options = options with { Task = task };
        var model = AutoModel.FromPretrained(baseDir, options);
        try
        {
            return PeftModel.FromPretrained(model, adapterDir, adapterName, isTrainable);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public static string ResolveBaseModel(string? nameOrPath, string adapterDir, IReadOnlyList<string>? modelRoots)
    {
        string configFile = Path.Combine(adapterDir, PeftModel.ConfigFileName);
        if (string.IsNullOrEmpty(nameOrPath))
            throw new PeftConfigException($"{configFile}: 'base_model_name_or_path' is empty; load the base model yourself and use PeftModel.FromPretrained");
        var tried = new List<string>();
        bool IsModel(string dir) => File.Exists(Path.Combine(dir, "config.json"));
        if (Path.IsPathRooted(nameOrPath))
        {
            if (IsModel(nameOrPath)) return nameOrPath;
            tried.Add(nameOrPath);
        }
        var roots = new List<string>(modelRoots ?? []);
        roots.Add(Path.GetDirectoryName(Path.GetFullPath(adapterDir))!);
        foreach (var root in roots)
        {
            foreach (var candidate in new[] { Path.Combine(root, nameOrPath), Path.Combine(root, nameOrPath.Replace('/', Path.DirectorySeparatorChar)), Path.Combine(root, nameOrPath.Split('/')[^1]) })
            {
                if (IsModel(candidate)) return candidate;
                tried.Add(candidate);
            }
        }
        throw new PeftUserException(
            $"{configFile}: base model '{nameOrPath}' not found (looked in: {string.Join(", ", tried.Distinct())}); pass a model root", UserErrorKind.NotFound);
    }
}
