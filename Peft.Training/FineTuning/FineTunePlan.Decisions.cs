using System.Globalization;
using Peft.Training.Data;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tokenization;
using Peft.Training.Training;
using Peft.Training.Tuners;

namespace Peft.Training.FineTuning;

/// <summary>The decisions a plan makes from a request: model folder, task, resume layout, trainer and data options.</summary>
public sealed partial class FineTunePlan
{
    /// <summary>Task names a request may use: kebab-case or PEFT's task_type (SEQ_CLS ...).</summary>
    public static readonly IReadOnlyDictionary<string, TaskType> TaskNames = new Dictionary<string, TaskType>(StringComparer.OrdinalIgnoreCase)
    {
        ["causal-lm"] = TaskType.CausalLM, ["seq2seq-lm"] = TaskType.Seq2SeqLM, ["seq-2-seq-lm"] = TaskType.Seq2SeqLM,
        ["seq-cls"] = TaskType.SequenceClassification, ["token-cls"] = TaskType.TokenClassification,
        ["question-ans"] = TaskType.QuestionAnswering, ["feature-extraction"] = TaskType.FeatureExtraction,
    };

    /// <summary>The request's model: a folder, else a folder of that name under one of the environment's model roots.</summary>
    private static string ResolveModel(FineTuneRequest r, FineTuneEnvironment env)
    {
        string model = r.Model is { Length: > 0 } m ? m : throw r.Error("model", "is required", UserErrorKind.BadRequest);
        if (Directory.Exists(model)) return model;
        if (!Path.IsPathRooted(model))
            foreach (var root in env.ModelRoots)
                if (Directory.Exists(Path.Combine(root, model))) return Path.Combine(root, model);
        string where = env.ModelRoots.Count == 0 ? "" : $" (nor under {string.Join(", ", env.ModelRoots)})";
        throw r.Error("model", $"folder not found: {model}{where}", UserErrorKind.NotFound);
    }

    /// <summary>The key's value as the task, else the adapter's task_type, else what config.json names.</summary>
    private static TaskType ResolveTask(FineTuneRequest r, ModelConfig config, TaskType? adapterTask)
    {
        TaskType? requested = null;
        if (r.Task is { } t)
        {
            requested = TaskNames.TryGetValue(t.Replace('_', '-'), out var named) ? named
                : throw r.Error("task", $"unknown task '{t}' (expected {string.Join(", ", TaskNames.Keys.Where(k => k != "seq-2-seq-lm"))})");
        }
        try { return AutoModel.ResolveTask(config, requested ?? adapterTask); }
        catch (PeftUserException e) when (requested is not null && e is not ModelConfigException) { throw r.Error("task", e.Message); }
    }

    /// <summary>Resuming from <c>out/checkpoint-N</c> (or <c>out</c>) writes on into <c>out</c>.</summary>
    private static string ResumeOutputDir(string resume)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(resume));
        return Path.GetFileName(full).StartsWith(CheckpointStore.Prefix, StringComparison.Ordinal) ? Path.GetDirectoryName(full)! : full;
    }

    /// <summary>On resume, the adapter is rebuilt from the checkpoint's own config, so its shapes always match.</summary>
    private static PeftConfig? ResumedAdapterConfig(string? resume)
    {
        if (resume is null || CheckpointStore.Resolve(resume) is not { } dir || !File.Exists(Path.Combine(dir, PeftModel.ConfigFileName))) return null;
        var config = PeftConfigs.Load(dir);
        config.InferenceMode = false;
        return config;
    }

    private static TrainingDataset LoadData(string file, ITextTokenizer? tokenizer, DatasetOptions options)
    {
        try { return DatasetBuilder.Load(file, tokenizer, options); }
        catch (ArgumentException e) when (tokenizer is null)
        {
            throw new PeftUserException($"{file}: {e.Message}; no tokenizer.json was found (set tokenizer)");
        }
    }

    private static readonly string[] TokenizerFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"];

    private static void CopyTokenizerFiles(string from, string to)
    {
        foreach (var name in TokenizerFiles)
        {
            string source = Path.Combine(from, name);
            if (File.Exists(source) && Directory.Exists(to)) AtomicFile.Copy(source, Path.Combine(to, name));
        }
    }

    private static DatasetOptions DataOptionsOf(FineTuneRequest r)
    {
        var format = ParseFormat(r.Format) ?? throw r.Error("format",
            $"unknown format '{r.Format}' (auto, text, instruction, chat, seq2seq, classification, token-classification, tokenized)");
        r.Check("max_length", r.MaxLength >= 2, $"must be at least 2, got {r.MaxLength}");
        r.Check("block_size", r.BlockSize is null or >= 2, $"must be at least 2, got {r.BlockSize}");
        return new DatasetOptions
        {
            Format = format, MaxLength = r.MaxLength, BlockSize = r.BlockSize, CompletionOnly = !r.TrainOnPrompt, SkipBadRows = r.SkipBadRows,
        };
    }

    /// <summary>A data format name (<c>token-classification</c>, <c>token_classification</c> ...), or null if unknown.</summary>
    public static DataFormat? ParseFormat(string name) =>
        Enum.TryParse(name.Replace("-", "").Replace("_", ""), ignoreCase: true, out DataFormat f) && Enum.IsDefined(f) ? f : null;

    /// <summary>TrainingArguments field names in <see cref="TrainingOptions.Validate"/>'s messages → request keys.</summary>
    private static readonly Dictionary<string, string> OptionKeys = new()
    {
        ["num_train_epochs"] = "epochs", ["per_device_train_batch_size"] = "batch_size", ["per_device_eval_batch_size"] = "eval_batch_size",
        ["gradient_accumulation_steps"] = "grad_accum", ["learning_rate"] = "learning_rate", ["weight_decay"] = "weight_decay",
        ["adam_beta1"] = "adam_beta1", ["adam_beta2"] = "adam_beta2", ["adam_epsilon"] = "adam_epsilon", ["momentum"] = "momentum",
        ["loraplus_lr_ratio"] = "loraplus_lr_ratio", ["warmup_steps"] = "warmup", ["warmup_ratio"] = "warmup",
        ["max_grad_norm"] = "max_grad_norm", ["eval_steps"] = "eval_every", ["save_steps"] = "save_every",
        ["save_total_limit"] = "save_total_limit", ["early_stopping_patience"] = "early_stopping_patience", ["output_dir"] = "out",
    };

    private static TrainingOptions TrainingOptionsOf(FineTuneRequest r, string outDir)
    {
        var optimizer = r.Optimizer.ToLowerInvariant() switch
        {
            "adamw" or "adamw_torch" => OptimizerKind.AdamW,
            "sgd" => OptimizerKind.Sgd,
            var other => throw r.Error("optimizer", $"unknown optimizer '{other}' (adamw, sgd)"),
        };
        SchedulerKind scheduler;
        try { scheduler = LrSchedule.ParseKind(r.Scheduler); }
        catch (ArgumentException e) { throw r.Error("scheduler", e.Message); }
        double warmup = r.Warmup;
        r.Check("warmup", warmup >= 0 && (warmup < 1 || warmup == Math.Floor(warmup)),
            $"must be a whole number of steps or a fraction below 1, got {warmup.ToString(CultureInfo.InvariantCulture)}");
        r.Check("max_steps", r.MaxSteps is null or > 0, $"must be positive, got {r.MaxSteps}");
        var o = new TrainingOptions
        {
            OutputDir = outDir,
            Epochs = r.Epochs,
            MaxSteps = r.MaxSteps ?? -1,
            BatchSize = r.BatchSize,
            EvalBatchSize = r.EvalBatchSize ?? r.BatchSize,
            GradientAccumulationSteps = r.GradAccum,
            Optimizer = optimizer,
            LearningRate = r.LearningRate,
            WeightDecay = r.WeightDecay,
            AdamBeta1 = r.AdamBeta1,
            AdamBeta2 = r.AdamBeta2,
            AdamEpsilon = r.AdamEpsilon,
            SgdMomentum = r.Momentum,
            MaxGradNorm = r.MaxGradNorm,
            LoraPlusLrRatio = r.LoraplusLrRatio,
            Scheduler = scheduler,
            WarmupSteps = warmup >= 1 ? (int)warmup : 0,
            WarmupRatio = warmup < 1 ? warmup : 0,
            GradientCheckpointing = r.GradientCheckpointing,
            EvalEvery = r.EvalEvery,
            SaveEvery = r.SaveEvery,
            SaveTotalLimit = r.SaveTotalLimit,
            EarlyStoppingPatience = r.EarlyStoppingPatience,
            Seed = r.Seed,
            Shuffle = !r.NoShuffle,
        };
        try { o.Validate(); }
        catch (ArgumentException e)
        {
            int space = e.Message.IndexOf(' ');
            string field = space > 0 ? e.Message[..space] : "";
            throw OptionKeys.TryGetValue(field, out var key) ? r.Error(key, e.Message[(space + 1)..]) : new PeftUserException(e.Message);
        }
        return o;
    }
}
