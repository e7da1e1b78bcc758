using Peft.Training.IO;
using Peft.Training.Models.Bloom;
using Peft.Training.Models.Gpt2;
using Peft.Training.Models.Llama;
using Peft.Training.Models.Opt;
using Peft.Training.Models.T5;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models;

/// <summary>Options for building/loading a model.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>Device for the weights; <c>meta</c> builds shapes only (no memory), e.g. to count parameters.</summary>
    public Device? Device { get; init; }
    /// <summary>Parameter dtype; null = float32 (transformers' default without torch_dtype="auto").</summary>
    public ScalarType? DType { get; init; }
    /// <summary>Head to build; null = the family's default (causal LM for decoders).</summary>
    public TaskType? Task { get; init; }
}

/// <summary>
/// Builds models from <c>config.json</c> by <c>model_type</c> (the equivalent of transformers' Auto classes).
/// One family = one folder under Models/ plus one registration line here.
/// </summary>
public static class AutoModel
{
    public delegate PretrainedModel Factory(ModelConfig config, TaskType task, Device device, ScalarType dtype);

    private static readonly Dictionary<string, (Factory Build, TaskType[] Tasks)> Families = new()
    {
        ["llama"] = (Llama, [TaskType.CausalLM]),
        ["mistral"] = (Llama, [TaskType.CausalLM]),
        ["qwen2"] = (Llama, [TaskType.CausalLM]),
        ["gpt2"] = ((c, t, d, s) => new Gpt2LMHeadModel(c, d, s), [TaskType.CausalLM]),
        ["opt"] = ((c, t, d, s) => new OptForCausalLM(c, d, s), [TaskType.CausalLM]),
        ["bloom"] = ((c, t, d, s) => new BloomForCausalLM(c, d, s), [TaskType.CausalLM]),
        ["t5"] = ((c, t, d, s) => new T5ForConditionalGeneration(c, d, s), [TaskType.Seq2SeqLM]),
        ["mt5"] = ((c, t, d, s) => new T5ForConditionalGeneration(c, d, s), [TaskType.Seq2SeqLM]),
    };

    private static PretrainedModel Llama(ModelConfig c, TaskType t, Device d, ScalarType s) => new LlamaForCausalLM(c, d, s);

    public static IReadOnlyCollection<string> SupportedModelTypes => Families.Keys;

    /// <summary>Registers (or replaces) a model family.</summary>
    public static void Register(string modelType, Factory factory, params TaskType[] tasks) => Families[modelType] = (factory, tasks);

    /// <summary>Builds a model from its config with uninitialised weights (call <c>InitWeights</c> or load).</summary>
    public static PretrainedModel FromConfig(ModelConfig config, ModelLoadOptions? options = null)
    {
        options ??= new ModelLoadOptions();
        string type = config.ModelType;
        if (!Families.TryGetValue(type, out var family))
            throw config.Error("model_type", $"'{type}' is not supported (supported: {string.Join(", ", Families.Keys.Order())})");
        var task = options.Task ?? family.Tasks[0];
        if (!family.Tasks.Contains(task))
            throw new ArgumentException($"model_type '{type}' has no {task.ToPeftString()} head (available: {string.Join(", ", family.Tasks.Select(x => x.ToPeftString()))})");
        var device = options.Device ?? torch.CPU;
        var dtype = options.DType ?? ScalarType.Float32;
        using var noGrad = torch.no_grad();
        var model = family.Build(config, task, device, dtype);
        model.NameOrPath = config.SourcePath is { } p ? Path.GetDirectoryName(Path.GetFullPath(p)) ?? "" : "";
        return model;
    }

    /// <summary>Loads a Hugging Face model folder: config.json + model.safetensors (or a sharded index).</summary>
    public static PretrainedModel FromPretrained(string modelDir, ModelLoadOptions? options = null)
    {
        if (!Directory.Exists(modelDir)) throw new DirectoryNotFoundException($"{modelDir}: model folder not found");
        var config = ModelConfig.FromFolder(modelDir);
        var model = FromConfig(config, options);
        try
        {
            using var reader = CheckpointReader.OpenFolder(modelDir);
            model.LoadWeights(reader, modelDir);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.NameOrPath = modelDir;
        return model;
    }
}
