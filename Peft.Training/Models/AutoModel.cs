using System.Collections.Frozen;
using Peft.Training.IO;
using Peft.Training.Models.Bert;
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
    /// <summary>
    /// Head to build; null = the one config.json's <c>architectures</c> names (e.g. <c>BertForSequenceClassification</c>)
    /// when the family has it, else the family's default (causal LM for decoders, the bare encoder for BERT).
    /// </summary>
    public TaskType? Task { get; init; }
    /// <summary>
    /// Class names for a classification head, like transformers' <c>from_pretrained(id2label=...)</c>: they set
    /// <c>num_labels</c>, <c>id2label</c> and <c>label2id</c> of the loaded config (and so of a saved fine-tune).
    /// </summary>
    public IReadOnlyList<string>? Labels { get; init; }
    /// <summary>
    /// Quantise linear weights while loading (transformers' <c>quantization_config=BitsAndBytesConfig(...)</c>). A folder
    /// whose config.json has a bitsandbytes <c>quantization_config</c> is loaded quantised without this.
    /// </summary>
    public Quantization.QuantizationConfig? Quantization { get; init; }
}

/// <summary>
/// Builds models from <c>config.json</c> by <c>model_type</c> (the equivalent of transformers' Auto classes).
/// One family = one folder under Models/ plus one registration line here.
/// </summary>
public static class AutoModel
{
    public delegate PretrainedModel Factory(ModelConfig config, TaskType task, Device device, ScalarType dtype);

    // Declared before Families: static fields initialise in text order.
    private static readonly TaskType[] BertTasks =
        [TaskType.FeatureExtraction, TaskType.SequenceClassification, TaskType.TokenClassification, TaskType.QuestionAnswering];

    // Fixed at start-up: runs on several threads read it, nothing writes it after the type initialiser.
    private static readonly FrozenDictionary<string, (Factory Build, TaskType[] Tasks)> Families = new Dictionary<string, (Factory Build, TaskType[] Tasks)>
    {
        ["llama"] = (Llama, [TaskType.CausalLM, TaskType.SequenceClassification]),
        ["mistral"] = (Llama, [TaskType.CausalLM, TaskType.SequenceClassification]),
        ["qwen2"] = (Llama, [TaskType.CausalLM, TaskType.SequenceClassification]),
        ["gpt2"] = (Gpt2, [TaskType.CausalLM, TaskType.SequenceClassification, TaskType.TokenClassification]),
        ["opt"] = (Opt, [TaskType.CausalLM, TaskType.SequenceClassification]),
        ["bloom"] = (Bloom, [TaskType.CausalLM, TaskType.SequenceClassification, TaskType.TokenClassification]),
        ["bert"] = (Bert, BertTasks),
        ["roberta"] = (Bert, BertTasks),
        ["xlm-roberta"] = (Bert, BertTasks),
        ["camembert"] = (Bert, BertTasks),
        ["t5"] = ((c, t, d, s) => new T5ForConditionalGeneration(c, d, s), [TaskType.Seq2SeqLM]),
        ["mt5"] = ((c, t, d, s) => new T5ForConditionalGeneration(c, d, s), [TaskType.Seq2SeqLM]),
    }.ToFrozenDictionary();

    // transformers 4.40 has no token-classification head for Llama/Mistral/Qwen2 or OPT, so neither do we.
    private static PretrainedModel Llama(ModelConfig c, TaskType t, Device d, ScalarType s) => t switch
    {
        TaskType.SequenceClassification => new LlamaForSequenceClassification(c, d, s),
        _ => new LlamaForCausalLM(c, d, s),
    };

    private static PretrainedModel Gpt2(ModelConfig c, TaskType t, Device d, ScalarType s) => t switch
    {
        TaskType.SequenceClassification or TaskType.TokenClassification => new Gpt2HeadModel(c, t, d, s),
        _ => new Gpt2LMHeadModel(c, d, s),
    };

    private static PretrainedModel Opt(ModelConfig c, TaskType t, Device d, ScalarType s) => t switch
    {
        TaskType.SequenceClassification => new OptForSequenceClassification(c, d, s),
        _ => new OptForCausalLM(c, d, s),
    };

    private static PretrainedModel Bloom(ModelConfig c, TaskType t, Device d, ScalarType s) => t switch
    {
        TaskType.SequenceClassification or TaskType.TokenClassification => new BloomHeadModel(c, t, d, s),
        _ => new BloomForCausalLM(c, d, s),
    };

    private static PretrainedModel Bert(ModelConfig c, TaskType t, Device d, ScalarType s) => t switch
    {
        TaskType.SequenceClassification when c.ModelType != "bert" => new RobertaForSequenceClassification(c, d, s),
        TaskType.SequenceClassification => new BertForSequenceClassification(c, d, s),
        TaskType.TokenClassification => new BertForTokenClassification(c, d, s),
        TaskType.QuestionAnswering => new BertForQuestionAnswering(c, d, s),
        _ => new BertModel(c, d, s),
    };

    /// <summary>The head named by <c>architectures[0]</c> (<c>...ForSequenceClassification</c>, <c>BertModel</c> ...), if any.</summary>
    public static TaskType? TaskFromArchitectures(ModelConfig config)
    {
        if (config.Json["architectures"] is not System.Text.Json.Nodes.JsonArray { Count: > 0 } a
            || a[0] is not System.Text.Json.Nodes.JsonValue v || !v.TryGetValue<string>(out var arch)) return null;
        if (arch.EndsWith("ForSequenceClassification", StringComparison.Ordinal)) return TaskType.SequenceClassification;
        if (arch.EndsWith("ForTokenClassification", StringComparison.Ordinal)) return TaskType.TokenClassification;
        if (arch.EndsWith("ForQuestionAnswering", StringComparison.Ordinal)) return TaskType.QuestionAnswering;
        if (arch.EndsWith("ForCausalLM", StringComparison.Ordinal) || arch.EndsWith("LMHeadModel", StringComparison.Ordinal)) return TaskType.CausalLM;
        if (arch.EndsWith("ForConditionalGeneration", StringComparison.Ordinal)) return TaskType.Seq2SeqLM;
        if (arch.EndsWith("Model", StringComparison.Ordinal)) return TaskType.FeatureExtraction;
        return null;
    }

    /// <summary>
    /// The head a load builds: <paramref name="requested"/> when given, else the one config.json's <c>architectures</c>
    /// names when the family has it, else the family's default. Throws when the family lacks the head.
    /// </summary>
    public static TaskType ResolveTask(ModelConfig config, TaskType? requested)
    {
        string type = config.ModelType;
        if (!Families.TryGetValue(type, out var family))
            throw config.Error("model_type", $"'{type}' is not supported (supported: {string.Join(", ", Families.Keys.Order())})");
        var task = requested ?? (TaskFromArchitectures(config) is { } named && family.Tasks.Contains(named) ? named : family.Tasks[0]);
        if (!family.Tasks.Contains(task))
            throw new PeftUserException($"model_type '{type}' has no {task.ToPeftString()} head (available: {string.Join(", ", family.Tasks.Select(x => x.ToPeftString()))})");
        return task;
    }

    private static readonly string[] ArchitectureSuffixes =
        ["ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering", "ForConditionalGeneration", "ForCausalLM", "LMHeadModel", "Model"];

    /// <summary>transformers' class name for <paramref name="task"/>'s head of this family (e.g. BertForSequenceClassification).</summary>
    public static string HeadClassName(ModelConfig config, TaskType task)
    {
        string prefix = config.Json["architectures"] is System.Text.Json.Nodes.JsonArray { Count: > 0 } a && a[0]?.GetValue<string>() is { } arch
            && ArchitectureSuffixes.FirstOrDefault(arch.EndsWith) is { } suffix
            ? arch[..^suffix.Length]
            : config.ModelType switch { "gpt2" => "GPT2", "opt" => "OPT", "mt5" => "MT5", "xlm-roberta" => "XLMRoberta", var t => char.ToUpperInvariant(t[0]) + t[1..] };
        return prefix + task switch
        {
            TaskType.CausalLM => prefix == "GPT2" ? "LMHeadModel" : "ForCausalLM",
            TaskType.Seq2SeqLM => "ForConditionalGeneration",
            TaskType.SequenceClassification => "ForSequenceClassification",
            TaskType.TokenClassification => "ForTokenClassification",
            TaskType.QuestionAnswering => "ForQuestionAnswering",
            _ => "Model",
        };
    }

    public static IReadOnlyCollection<string> SupportedModelTypes => Families.Keys;

    /// <summary>Builds a model from its config with uninitialised weights (call <c>InitWeights</c> or load).</summary>
    public static PretrainedModel FromConfig(ModelConfig config, ModelLoadOptions? options = null)
    {
        options ??= new ModelLoadOptions();
        string type = config.ModelType;
        if (!Families.TryGetValue(type, out var family))
            throw config.Error("model_type", $"'{type}' is not supported (supported: {string.Join(", ", Families.Keys.Order())})");
        var task = ResolveTask(config, options.Task);
        bool otherHead = TaskFromArchitectures(config) is { } named && named != task;
        if (options.Labels is not null || otherHead)
        {
            // The config now describes another head: a saved fine-tune must load back with that head (and labels).
            config = config.Clone();
            if (options.Labels is { } labels) TaskHeads.SetLabels(config, labels);
            if (otherHead) config.Json["architectures"] = new System.Text.Json.Nodes.JsonArray(HeadClassName(config, task));
        }
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
        if (!Directory.Exists(modelDir)) throw new PeftUserException($"{modelDir}: model folder not found", UserErrorKind.NotFound);
        var config = ModelConfig.FromFolder(modelDir);
        if ((options?.Quantization ?? Quantization.QuantizationConfig.FromModelConfig(config)) is { } quant)
        {
            var qm = Quantization.QuantizedLoading.Load(modelDir, config, options ?? new ModelLoadOptions(), quant);
            qm.NameOrPath = modelDir;
            return qm;
        }
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
        // As transformers' from_pretrained: a loaded model starts in eval mode (no dropout) until a trainer calls train().
        model.eval();
        return model;
    }
}
