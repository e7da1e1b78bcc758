using Peft.Training.Data;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Quantization;
using Peft.Training.Tokenization;
using Peft.Training.Training;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.FineTuning;

/// <summary>Where a host keeps its models: a request's <c>model</c> may name a folder under one of these roots.</summary>
public sealed record FineTuneEnvironment
{
    public IReadOnlyList<string> ModelRoots { get; init; } = [];
}

/// <summary>What a finished (or cancelled) run produced.</summary>
public sealed record FineTuneResult(TrainingResult Training, string OutputDir)
{
    public bool Cancelled => Training.Reason == TrainingStopReason.Cancelled;
}

/// <summary>What a job builder shows before training: exact trainable parameters (as <c>print_trainable_parameters</c>) and the adapter's size.</summary>
/// <param name="AdapterBytes">Tensor bytes of the saved adapter, or of the saved model for full / head.</param>
public sealed record FineTuneEstimate(long TrainableParameters, long AllParameters, long AdapterBytes, string? PeftType, TaskType Task)
{
    public double TrainablePercent => AllParameters == 0 ? 0 : 100.0 * TrainableParameters / AllParameters;
}

/// <summary>
/// A validated <see cref="FineTuneRequest"/>: every key checked (errors name the key, as the caller spelled it), paths
/// resolved, the task, head and labels decided, the trainer's and the data's options built. Nothing heavy happens
/// until <see cref="Run"/> or <see cref="Estimate"/>. The CLI's <c>peft train</c>, the benchmark and the hub's job
/// workers all go through here.
/// </summary>
public sealed partial class FineTunePlan
{
    private FineTunePlan(FineTuneRequest request, FineTuneMethod method, ModelConfig modelConfig)
    {
        Request = request;
        Method = method;
        ModelConfig = modelConfig;
    }

    public FineTuneRequest Request { get; }
    public FineTuneMethod Method { get; }
    public ModelConfig ModelConfig { get; }
    public required string ModelDir { get; init; }
    /// <summary>Folder of tokenizer.json, or null when there is none (pre-tokenized data only).</summary>
    public required string? TokenizerDir { get; init; }
    public required string DataFile { get; init; }
    public required string? EvalDataFile { get; init; }
    /// <summary>Output layout: checkpoints in <c>checkpoint-N/</c>, the final adapter (or model + tokenizer) at the top.</summary>
    public required string OutputDir { get; init; }
    public required string? ResumeFrom { get; init; }
    public required TaskType Task { get; init; }
    /// <summary>Class names config.json already has (null: the data names them).</summary>
    public required IReadOnlyList<string>? ConfigLabels { get; init; }
    public required TrainingOptions Training { get; init; }
    public required DatasetOptions Data { get; init; }
    /// <summary>The adapter config rebuilt from the checkpoint on resume (so its shapes match), else null.</summary>
    private PeftConfig? ResumedConfig { get; init; }
    /// <summary>How the frozen base is quantised (QLoRA); null = full precision.</summary>
    public QuantizationConfig? Quantization { get; init; }

    private bool TrainsAdapter => Request.InitAdapter is not null || ResumedConfig is not null || Method.PeftType is not null;

    /// <summary>Validates <paramref name="request"/>; throws a <see cref="PeftUserException"/> naming the first bad key.</summary>
    public static FineTunePlan Create(FineTuneRequest request, FineTuneEnvironment? environment = null)
    {
        var env = environment ?? new FineTuneEnvironment();
        var r = request;
        string modelDir = ResolveModel(r, env);
        string dataFile = r.Data is { Length: > 0 } d ? d : throw r.Error("data", "is required", UserErrorKind.BadRequest);
        if (!File.Exists(dataFile)) throw r.Error("data", $"file not found: {dataFile}", UserErrorKind.NotFound);
        if (r.EvalData is { } ev && !File.Exists(ev)) throw r.Error("eval_data", $"file not found: {ev}", UserErrorKind.NotFound);
        string outDir = r.Out ?? (r.Resume is null ? throw r.Error("out", "is required", UserErrorKind.BadRequest) : ResumeOutputDir(r.Resume));
        var method = FineTuneMethods.Get(r);
        if (r.InitAdapter is { } init && !File.Exists(Path.Combine(init, PeftModel.ConfigFileName)))
            throw r.Error("init_adapter", $"no {PeftModel.ConfigFileName} in {init}", UserErrorKind.NotFound);
        var resumed = r.InitAdapter is null ? ResumedAdapterConfig(r.Resume) : null;
        r.Check("bf16", !(r.Bf16 && r.InitAdapter is null && resumed is null && method.PeftType is null),
            $"needs an adapter method: '{method.Name}' would train bfloat16 weights");
        var quantization = QuantizationConfig.FromNames(r.Quantize, r.DoubleQuant, r.Label("quantize"), r.Label("double_quant"));
        r.Check("quantize", !(quantization is not null && r.InitAdapter is null && resumed is null && method.PeftType is null),
            $"needs an adapter method: '{method.Name}' would train quantised weights");
        if (quantization is not null && r.Bf16) quantization = quantization with { ComputeDType = ScalarType.BFloat16 };
        r.Check("validation_split", r.ValidationSplit is null or (> 0 and < 1), $"must be in (0, 1), got {r.ValidationSplit}");
        var training = TrainingOptionsOf(r, outDir);
        var data = DataOptionsOf(r);

        var config = ModelConfig.FromFolder(modelDir);
        var task = ResolveTask(r, config, r.InitAdapter is { } a ? PeftConfigs.Load(a).TaskType : (resumed?.TaskType));
        bool classifies = task is TaskType.SequenceClassification or TaskType.TokenClassification;
        // Method keys are checked now (AdaLoRA's total_step is only known once the data is read).
        if (r.InitAdapter is null && resumed is null) FineTuneMethods.CreateConfig(r, task, r.TotalStep ?? int.MaxValue / 2);
        string tokenizerDir = r.Tokenizer ?? modelDir;
        if (r.Tokenizer is not null && !Directory.Exists(tokenizerDir)) throw r.Error("tokenizer", $"folder not found: {tokenizerDir}", UserErrorKind.NotFound);
        return new FineTunePlan(r, method, config)
        {
            ModelDir = modelDir,
            TokenizerDir = File.Exists(Path.Combine(tokenizerDir, "tokenizer.json")) ? tokenizerDir : null,
            DataFile = dataFile,
            EvalDataFile = r.EvalData,
            OutputDir = outDir,
            ResumeFrom = r.Resume,
            Task = task,
            ConfigLabels = classifies ? TaskHeads.LabelNames(config) : null,
            Training = training,
            Data = data with { Task = task, LabelNames = classifies ? TaskHeads.LabelNames(config) : null },
            ResumedConfig = resumed,
            Quantization = quantization,
        };
    }

    /// <summary>
    /// Trains: reads the data, loads the model, builds the adapter (seeded by the request's seed) and runs the
    /// <see cref="Trainer"/> on its own generator. Cancellation writes a checkpoint and returns normally
    /// (<see cref="FineTuneResult.Cancelled"/>); <see cref="ResumeFrom"/> continues it.
    /// </summary>
    public FineTuneResult Run(IProgress<TrainingEvent>? progress = null, CancellationToken cancellation = default)
    {
        using var tokenizer = TokenizerDir is null ? null : AutoTokenizer.FromFolder(TokenizerDir);
        var train = LoadData(DataFile, tokenizer, Data);
        TrainingDataset? eval = EvalDataFile is null ? null : LoadData(EvalDataFile, tokenizer, Data with { LabelNames = ConfigLabels ?? train.LabelNames });
        // Classification data is mapped with config.json's class names when it has real ones, else the data names them
        // (sorted) and they are written into the model's config, as transformers' from_pretrained(id2label=...) does.
        bool classifies = Task is TaskType.SequenceClassification or TaskType.TokenClassification;
        var newLabels = classifies && ConfigLabels is null && train.LabelNames is { Count: > 0 } names ? names : null;
        // transformers reads num_labels = 1 as regression: one class in the data is a mistake, not a model.
        if (newLabels is [var only]) throw new PeftUserException($"{DataFile}: every row has the label '{only}'; a classifier needs at least two classes");
        if (eval is null && Request.ValidationSplit is { } split) (train, eval) = train.Split(split, Training.Seed);

        bool bf16 = Request.Bf16;
        if (bf16)
        {
            // Without native bf16 (AVX2-only CPUs) libtorch's bf16 matmul runs hundreds of times slower than fp32:
            // measure both rates (about a second) and keep fp32 when bf16 would not pay.
            var probe = MatmulRate.ProbeBf16();
            if (!probe.Worthwhile)
            {
                bf16 = false;
                progress?.Report(new TrainingEvent
                {
                    Kind = TrainingEventKind.Warning,
                    Message = string.Create(System.Globalization.CultureInfo.InvariantCulture,
                        $"bf16 ignored: this CPU multiplies bf16 at {probe.Bf16:F1} GFLOP/s against {probe.Fp32:F1} for fp32; training in fp32"),
                });
            }
        }
        var quantization = Quantization is not null && Request.Bf16 && !bf16 ? Quantization with { ComputeDType = null } : Quantization;
        var model = AutoModel.FromPretrained(ModelDir, new ModelLoadOptions
        {
            DType = bf16 && quantization is null ? ScalarType.BFloat16 : null, Task = Task, Labels = newLabels, Quantization = quantization,
        });
        // QLoRA: frozen k-bit base, float32 norms/embeddings/heads (the trainer turns checkpointing on when asked).
        if (quantization is not null) KbitTraining.PrepareForKbitTraining(model, useGradientCheckpointing: Request.GradientCheckpointing);
        PeftModel? peft = null;
        try
        {
            peft = BuildAdapter(model, Trainer.PlannedSteps(Training, train.Count));
            var trainable = peft is not null ? TrainableModel.ForAdapter(peft)
                : Method.TrainsHeadOnly ? TrainableModel.ForHeadOnly(model) : TrainableModel.ForFullFineTune(model);
            var collator = new DataCollator(model.Task, tokenizer?.PadTokenId ?? tokenizer?.EosTokenId ?? 0);
            using var trainer = new Trainer(trainable, Training, train, eval, collator, progress);
            var result = trainer.Train(ResumeFrom, cancellation);
            // A trained model folder is complete with its tokenizer (what transformers' Trainer saves next to it).
            if (peft is null && result.Reason != TrainingStopReason.Cancelled && TokenizerDir is not null) CopyTokenizerFiles(TokenizerDir, OutputDir);
            return new FineTuneResult(result, OutputDir);
        }
        finally
        {
            if (peft is not null) peft.Dispose();
            else model.Dispose();
        }
    }

    /// <summary>
    /// Builds the model and adapter on the meta device (no weights read, no data read) and counts what the run trains.
    /// Classification heads are sized by config.json's labels (two when it names none).
    /// </summary>
    public FineTuneEstimate Estimate()
    {
        var labels = Task is TaskType.SequenceClassification or TaskType.TokenClassification && ConfigLabels is null ? new[] { "0", "1" } : null;
        using var model = AutoModel.FromConfig(ModelConfig, new ModelLoadOptions { Device = torch.META, Task = Task, Labels = labels });
        using var peft = BuildAdapter(model, Request.TotalStep ?? Request.MaxSteps ?? 1, loadWeights: false);
        if (peft is not null)
        {
            var (t, all) = peft.GetNbTrainableParameters();
            return new FineTuneEstimate(t, all, peft.AdapterDataBytes(), peft.PeftType, Task);
        }
        var trainable = Method.TrainsHeadOnly ? TrainableModel.ForHeadOnly(model) : TrainableModel.ForFullFineTune(model);
        long n = trainable.Parameters().Sum(p => p.Parameter.numel());
        long allParams = model.UniqueNamedParameters().Sum(p => p.Param.numel());
        long bytes = model.UniqueNamedParameters().Sum(p => p.Param.numel() * p.Param.ElementSize);
        return new FineTuneEstimate(n, allParams, bytes, null, Task);
    }

    private PeftModel? BuildAdapter(PretrainedModel model, int plannedSteps, bool loadWeights = true)
    {
        if (Request.InitAdapter is { } init)
        {
            if (loadWeights) return PeftModel.FromPretrained(model, init, isTrainable: true);
            var cfg = PeftConfigs.Load(init);
            cfg.InferenceMode = false;
            return PeftModel.Create(model, cfg, seed: Training.Seed);
        }
        var config = ResumedConfig ?? FineTuneMethods.CreateConfig(Request, model.Task, plannedSteps);
        return config is null ? null : PeftModel.Create(model, config, seed: Training.Seed);
    }
}
