using Peft.Cli.Support;
using System.Globalization;
using Peft.Training.Data;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tokenization;
using Peft.Training.Training;
using Peft.Training.Tuners;
using Peft.Training.Tuners.AdaLora;
using Spectre.Console;
using static TorchSharp.torch;

namespace Peft.Cli.Commands;

/// <summary>Runs <c>peft train</c> from validated settings: load, build the data, train, report progress.</summary>
internal static class TrainRunner
{
    public static int Run(TrainSettings s, TextWriter stdout, TextWriter stderr, CancellationToken cancellation)
    {
        try
        {
            return Train(s, stdout, cancellation);
        }
        catch (Exception e) when (IsInputError(e))
        {
            stderr.WriteLine($"error: {OneLine(e.Message)}");
            return 2;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"error: unexpected {e.GetType().Name}: {OneLine(e.Message)}");
            return 1;
        }
    }

    private static bool IsInputError(Exception e) => e is PeftUserException;

    private static string OneLine(string m) => m.ReplaceLineEndings(" ");

    private static int Train(TrainSettings s, TextWriter stdout, CancellationToken cancellation)
    {
        string modelDir = s.RequiredText("model");
        if (!Directory.Exists(modelDir)) throw new UsageException($"--model: folder not found: {modelDir}");
        string dataFile = s.RequiredText("data");
        if (!File.Exists(dataFile)) throw new UsageException($"--data: file not found: {dataFile}");
        string? evalFile = s.Text("eval-data");
        if (evalFile is not null && !File.Exists(evalFile)) throw new UsageException($"--eval-data: file not found: {evalFile}");
        string? resume = s.Text("resume");
        string outDir = s.Text("out") ?? (resume is null ? throw new UsageException("--out is required") : ResumeOutputDir(resume));
        string method = s.Text("method") ?? "lora";
        if (!TrainMethods.Exists(method))
            throw new UsageException($"--method: unknown method '{method}' (expected {string.Join(", ", TrainMethods.Names)})");
        string? initAdapter = s.Text("init-adapter");
        bool bf16 = s.Flag("bf16");
        var peftConfig = initAdapter is null ? ResumedAdapterConfig(resume) ?? TrainMethods.Create(method, s) : null;
        bool full = initAdapter is null && peftConfig is null;
        s.Check("bf16", !(bf16 && full), $"needs an adapter method: '{method}' would train bfloat16 weights");
        var options = Options(s, outDir);
        var dataOptions = DataOptions(s);

        var config = ModelConfig.FromFolder(modelDir);
        var task = ResolveTask(s, config, initAdapter is null ? peftConfig?.TaskType : PeftConfigs.Load(initAdapter).TaskType);
        // Classification data is mapped with config.json's class names when it has real ones, else the data names them
        // (sorted) and they are written into the model's config, as transformers' from_pretrained(id2label=...) does.
        bool classifies = task is TaskType.SequenceClassification or TaskType.TokenClassification;
        var configLabels = classifies ? TaskHeads.LabelNames(config) : null;
        dataOptions = dataOptions with { Task = task, LabelNames = configLabels };

        using var tokenizer = LoadTokenizer(s.Text("tokenizer") ?? modelDir);
        var train = LoadData(dataFile, tokenizer, dataOptions);
        TrainingDataset? eval = evalFile is null ? null
            : LoadData(evalFile, tokenizer, dataOptions with { LabelNames = configLabels ?? train.LabelNames });
        var newLabels = classifies && configLabels is null && train.LabelNames is { Count: > 0 } names ? names : null;
        // transformers reads num_labels = 1 as regression: one class in the data is a mistake, not a model.
        if (newLabels is [var only]) throw new UsageException($"{dataFile}: every row has the label '{only}'; a classifier needs at least two classes");
        var model = AutoModel.FromPretrained(modelDir, new ModelLoadOptions { DType = bf16 ? ScalarType.BFloat16 : null, Task = task, Labels = newLabels });
        PeftModel? peft = null;
        try
        {
            if (eval is null && s.Number("validation-split") is { } split)
            {
                s.Check("validation-split", split is > 0 and < 1, $"must be in (0, 1), got {split}");
                (train, eval) = train.Split(split, options.Seed);
            }
            TrainableModel trainable;
            if (initAdapter is not null)
            {
                peft = PeftModel.FromPretrained(model, initAdapter, isTrainable: true);
                trainable = TrainableModel.ForAdapter(peft);
            }
            else if (peftConfig is not null)
            {
                // AdaLoRA schedules its rank budget over the run: default total_step to the planned step count.
                if (peftConfig is AdaLoraConfig ada && ada.TotalStep is null) ada.TotalStep = Trainer.PlannedSteps(options, train.Count);
                // Prompt-learning configs need a task type (PEFT refuses none); the CLI takes the model's.
                peftConfig.TaskType ??= model.Task;
                peft = PeftModel.Create(model, peftConfig, seed: options.Seed);
                trainable = TrainableModel.ForAdapter(peft);
            }
            else trainable = TrainMethods.TrainsHeadOnly(method) ? TrainableModel.ForHeadOnly(model) : TrainableModel.ForFullFineTune(model);

            long pad = tokenizer?.PadTokenId ?? tokenizer?.EosTokenId ?? 0;
            var collator = new DataCollator(model.Task, pad);
            var result = s.Flag("json-events")
                ? RunWithJson(trainable, options, train, eval, collator, resume, stdout, cancellation)
                : RunWithProgressBar(trainable, options, train, eval, collator, resume, stdout, cancellation);
            if (peft is null && result.Reason != TrainingStopReason.Cancelled) CopyTokenizerFiles(s.Text("tokenizer") ?? modelDir, outDir);
            return result.Reason == TrainingStopReason.Cancelled ? 130 : 0;
        }
        finally
        {
            if (peft is not null) peft.Dispose();
            else model.Dispose();
        }
    }

    private static readonly Dictionary<string, TaskType> TaskNames = new(StringComparer.OrdinalIgnoreCase)
    {
        ["causal-lm"] = TaskType.CausalLM, ["seq2seq-lm"] = TaskType.Seq2SeqLM, ["seq-2-seq-lm"] = TaskType.Seq2SeqLM,
        ["seq-cls"] = TaskType.SequenceClassification, ["token-cls"] = TaskType.TokenClassification,
        ["question-ans"] = TaskType.QuestionAnswering, ["feature-extraction"] = TaskType.FeatureExtraction,
    };

    /// <summary>--task (kebab-case or PEFT's task_type), else the adapter's task_type, else what config.json names.</summary>
    private static TaskType ResolveTask(TrainSettings s, ModelConfig config, TaskType? adapterTask)
    {
        TaskType? requested = null;
        if (s.Text("task") is { } t)
        {
            requested = TaskNames.TryGetValue(t.Replace('_', '-'), out var named) ? named
                : throw new UsageException($"--task: unknown task '{t}' (expected {string.Join(", ", TaskNames.Keys.Where(k => k != "seq-2-seq-lm"))})");
        }
        try { return AutoModel.ResolveTask(config, requested ?? adapterTask); }
        catch (ArgumentException e) when (requested is not null) { throw new UsageException($"--task: {e.Message}"); }
    }

    private static readonly string[] TokenizerFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"];

    /// <summary>A trained model folder is complete with its tokenizer (what transformers' Trainer saves next to it).</summary>
    private static void CopyTokenizerFiles(string from, string to)
    {
        foreach (var name in TokenizerFiles)
        {
            string source = Path.Combine(from, name);
            if (File.Exists(source) && Directory.Exists(to)) AtomicFile.Copy(source, Path.Combine(to, name));
        }
    }

    /// <summary>On resume, the adapter is rebuilt from the checkpoint's own config, so its shapes always match.</summary>
    private static PeftConfig? ResumedAdapterConfig(string? resume)
    {
        if (resume is null || CheckpointStore.Resolve(resume) is not { } dir || !File.Exists(Path.Combine(dir, PeftModel.ConfigFileName))) return null;
        var config = PeftConfigs.Load(dir);
        config.InferenceMode = false;
        return config;
    }

    private static string ResumeOutputDir(string resume)
    {
        string full = Path.GetFullPath(resume);
        return Path.GetFileName(Path.TrimEndingDirectorySeparator(full)).StartsWith(CheckpointStore.Prefix, StringComparison.Ordinal)
            ? Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(full))!
            : full;
    }

    private static ITextTokenizer? LoadTokenizer(string dir) =>
        File.Exists(Path.Combine(dir, "tokenizer.json")) ? AutoTokenizer.FromFolder(dir) : null;

    private static TrainingDataset LoadData(string file, ITextTokenizer? tokenizer, DatasetOptions options)
    {
        try { return DatasetBuilder.Load(file, tokenizer, options); }
        catch (ArgumentException e) when (tokenizer is null)
        {
            throw new UsageException($"{file}: {e.Message}; no tokenizer.json was found (pass --tokenizer)");
        }
    }

    private static DatasetOptions DataOptions(TrainSettings s)
    {
        var format = DataFormat.Auto;
        if (s.Text("format") is { } f)
        {
            string norm = f.Replace("-", "").Replace("_", "");
            if (!Enum.TryParse(norm, ignoreCase: true, out format) || !Enum.IsDefined(format))
                throw new UsageException($"--format: unknown format '{f}' (auto, text, instruction, chat, seq2seq, classification, token-classification, tokenized)");
        }
        int maxLength = s.Int("max-length") ?? 512;
        s.Check("max-length", maxLength >= 2, $"must be at least 2, got {maxLength}");
        int? block = s.Int("block-size");
        s.Check("block-size", block is null or >= 2, $"must be at least 2, got {block}");
        return new DatasetOptions
        {
            Format = format,
            MaxLength = maxLength,
            BlockSize = block,
            CompletionOnly = !s.Flag("train-on-prompt"),
            SkipBadRows = s.Flag("skip-bad-rows"),
        };
    }

    private static TrainingOptions Options(TrainSettings s, string outDir)
    {
        var optimizer = (s.Text("optimizer") ?? "adamw").ToLowerInvariant() switch
        {
            "adamw" or "adamw_torch" => OptimizerKind.AdamW,
            "sgd" => OptimizerKind.Sgd,
            var other => throw new UsageException($"--optimizer: unknown optimizer '{other}' (adamw, sgd)"),
        };
        SchedulerKind scheduler;
        try { scheduler = LrSchedule.ParseKind(s.Text("scheduler") ?? "linear"); }
        catch (ArgumentException e) { throw new UsageException($"--scheduler: {e.Message}"); }
        double warmup = s.Number("warmup") ?? 0;
        s.Check("warmup", warmup >= 0 && (warmup < 1 || warmup == Math.Floor(warmup)), $"must be a whole number of steps or a fraction below 1, got {warmup.ToString(CultureInfo.InvariantCulture)}");
        int batch = s.Int("batch-size") ?? 8;
        var o = new TrainingOptions
        {
            OutputDir = outDir,
            Epochs = s.Number("epochs") ?? 3,
            MaxSteps = s.Int("max-steps") ?? -1,
            BatchSize = batch,
            EvalBatchSize = s.Int("eval-batch-size") ?? batch,
            GradientAccumulationSteps = s.Int("grad-accum") ?? 1,
            Optimizer = optimizer,
            LearningRate = s.Number("lr") ?? 2e-4,
            WeightDecay = s.Number("weight-decay") ?? 0,
            AdamBeta1 = s.Number("adam-beta1") ?? 0.9,
            AdamBeta2 = s.Number("adam-beta2") ?? 0.999,
            AdamEpsilon = s.Number("adam-epsilon") ?? 1e-8,
            SgdMomentum = s.Number("momentum") ?? 0,
            MaxGradNorm = s.Number("max-grad-norm") ?? 1.0,
            LoraPlusLrRatio = s.Number("loraplus-lr-ratio"),
            Scheduler = scheduler,
            WarmupSteps = warmup >= 1 ? (int)warmup : 0,
            WarmupRatio = warmup < 1 ? warmup : 0,
            GradientCheckpointing = s.Flag("gradient-checkpointing"),
            EvalEvery = s.Int("eval-every") ?? 0,
            SaveEvery = s.Int("save-every") ?? 0,
            SaveTotalLimit = s.Int("save-total-limit"),
            EarlyStoppingPatience = s.Int("early-stopping-patience"),
            Seed = s.Int("seed") ?? 42,
            Shuffle = !s.Flag("no-shuffle"),
        };
        try { o.Validate(); }
        catch (ArgumentException e) { throw new UsageException(FlagFor(e.Message)); }
        return o;
    }

    /// <summary>Rewrites TrainingArguments field names in a validation message to the flag the user typed.</summary>
    private static string FlagFor(string message)
    {
        var map = new Dictionary<string, string>
        {
            ["num_train_epochs"] = "--epochs", ["per_device_train_batch_size"] = "--batch-size", ["per_device_eval_batch_size"] = "--eval-batch-size",
            ["gradient_accumulation_steps"] = "--grad-accum", ["learning_rate"] = "--lr", ["weight_decay"] = "--weight-decay",
            ["adam_beta1"] = "--adam-beta1", ["adam_beta2"] = "--adam-beta2", ["adam_epsilon"] = "--adam-epsilon", ["momentum"] = "--momentum",
            ["loraplus_lr_ratio"] = "--loraplus-lr-ratio", ["warmup_steps"] = "--warmup", ["warmup_ratio"] = "--warmup",
            ["max_grad_norm"] = "--max-grad-norm", ["eval_steps"] = "--eval-every", ["save_steps"] = "--save-every",
            ["save_total_limit"] = "--save-total-limit", ["early_stopping_patience"] = "--early-stopping-patience", ["output_dir"] = "--out",
        };
        int space = message.IndexOf(' ');
        return space > 0 && map.TryGetValue(message[..space], out var flag) ? flag + ":" + message[space..] : message;
    }

    private static TrainingResult RunWithJson(TrainableModel model, TrainingOptions options, TrainingDataset train, TrainingDataset? eval,
        DataCollator collator, string? resume, TextWriter stdout, CancellationToken cancellation)
    {
        var progress = new SyncProgress<TrainingEvent>(e =>
        {
            stdout.WriteLine(e.ToJson());
            stdout.Flush();
        });
        using var trainer = new Trainer(model, options, train, eval, collator, progress);
        return trainer.Train(resume, cancellation);
    }

    private static TrainingResult RunWithProgressBar(TrainableModel model, TrainingOptions options, TrainingDataset train, TrainingDataset? eval,
        DataCollator collator, string? resume, TextWriter stdout, CancellationToken cancellation)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stdout) });
        TrainingResult? result = null;
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                ProgressTask? task = null;
                var progress = new SyncProgress<TrainingEvent>(e =>
                {
                    task ??= ctx.AddTask("training", maxValue: Math.Max(1, e.TotalSteps));
                    switch (e.Kind)
                    {
                        case TrainingEventKind.Step:
                            task.Value = e.Step;
                            task.Description = string.Create(CultureInfo.InvariantCulture,
                                $"step {e.Step}/{e.TotalSteps} epoch {e.Epoch:F2} loss {e.Loss:F4} lr {e.LearningRate:E2} {e.TokensPerSecond:F0} tok/s");
                            break;
                        case TrainingEventKind.Started:
                            task.Value = e.Step;
                            console.MarkupLine($"[grey]{Markup.Escape(e.Message ?? "")}[/]");
                            break;
                        case TrainingEventKind.Evaluation:
                            console.MarkupLine($"[blue]eval @ step {e.Step}:[/] {Markup.Escape(FormatMetrics(e.Metrics))}");
                            break;
                        case TrainingEventKind.Checkpoint:
                            console.MarkupLine($"[grey]checkpoint {Markup.Escape(e.Path ?? "")}[/]");
                            break;
                        case TrainingEventKind.EarlyStopped or TrainingEventKind.Cancelled:
                            console.MarkupLine($"[yellow]{Markup.Escape(e.Message ?? "")}[/]");
                            break;
                        case TrainingEventKind.Completed:
                            task.StopTask();
                            console.MarkupLine($"[green]{Markup.Escape(e.Message ?? "")}[/]: {Markup.Escape(e.Path ?? "")}");
                            break;
                    }
                });
                using var trainer = new Trainer(model, options, train, eval, collator, progress);
                result = trainer.Train(resume, cancellation);
            });
        return result!;
    }

    private static string FormatMetrics(IReadOnlyDictionary<string, double>? m) =>
        m is null ? "" : string.Join(", ", m.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:F4}")));
}
