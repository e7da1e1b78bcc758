using Peft.Training.Quantization;
using Peft.Training.Data;
using Peft.Training.Models;
using Peft.Training.Tokenization;
using Peft.Training.Training;
using Peft.Training.Tuners;

namespace Peft.Training.FineTuning;

/// <summary>An evaluation job: a model (with an optional adapter) scored on a data file.</summary>
public sealed record EvaluationRequest(string ModelDir, string DataFile)
{
    public string? AdapterDir { get; init; }
    /// <summary>Data format; null = text for language models, classification / token-classification for classifiers.</summary>
    public string? Format { get; init; }
    /// <summary>Packed block length for text, and the cut-off length of other examples.</summary>
    public int BlockSize { get; init; } = 256;
    public int BatchSize { get; init; } = 8;
    /// <summary>Load the base quantised (as it was trained with QLoRA); null = as stored.</summary>
    public QuantizationConfig? Quantization { get; init; }
}

/// <summary>The trainer's evaluation metrics (loss + perplexity, or loss + accuracy + macro F1) and what was counted.</summary>
public sealed record EvaluationReport(IReadOnlyDictionary<string, double> Metrics, long Counted, bool Classifies, int Examples);

/// <summary>What <c>peft eval</c> runs: the head is the adapter's task_type, else what config.json names.</summary>
public static class ModelEvaluation
{
    public static EvaluationReport Run(EvaluationRequest request)
    {
        if (!Directory.Exists(request.ModelDir)) throw new PeftUserException($"{request.ModelDir}: model folder not found", UserErrorKind.NotFound);
        if (!File.Exists(request.DataFile)) throw new PeftUserException($"{request.DataFile}: data file not found", UserErrorKind.NotFound);
        if (request.BlockSize <= 0 || request.BatchSize <= 0) throw new PeftUserException("block size and batch size must be positive", UserErrorKind.BadRequest);
        if (request.AdapterDir is { } a && !Directory.Exists(a)) throw new PeftUserException($"{a}: adapter folder not found", UserErrorKind.NotFound);
        var config = ModelConfig.FromFolder(request.ModelDir);
        var task = AutoModel.ResolveTask(config, request.AdapterDir is null ? null : PeftConfigs.Load(request.AdapterDir).TaskType);
        bool classifies = task is TaskType.SequenceClassification or TaskType.TokenClassification;
        var format = request.Format is null
            ? task switch
            {
                TaskType.SequenceClassification => DataFormat.Classification,
                TaskType.TokenClassification => DataFormat.TokenClassification,
                _ => DataFormat.Text,
            }
            : FineTunePlan.ParseFormat(request.Format) ?? throw new PeftUserException($"unknown data format '{request.Format}'", UserErrorKind.BadRequest);
        using var tokenizer = AutoTokenizer.FromFolder(request.ModelDir);
        var dataset = DatasetBuilder.Load(request.DataFile, tokenizer, new DatasetOptions
        {
            Format = format, Task = task, BlockSize = request.BlockSize, MaxLength = request.BlockSize,
            LabelNames = classifies ? TaskHeads.LabelNames(config) : null,
        });
        var model = AutoModel.FromPretrained(request.ModelDir, new ModelLoadOptions { Task = task, Quantization = request.Quantization });
        PeftModel? peft = null;
        try
        {
            model.eval();
            if (request.AdapterDir is { } adapter) peft = PeftModel.FromPretrained(model, adapter);
            var collator = new DataCollator(model.Task, tokenizer.PadTokenId ?? tokenizer.EosTokenId ?? 0);
            var result = Evaluation.Run(TrainableModel.ForEvaluation(model, peft), collator, dataset, request.BatchSize);
            return new EvaluationReport(result.Metrics, result.Counted, classifies, dataset.Count);
        }
        finally
        {
            if (peft is not null) peft.Dispose();
            else model.Dispose();
        }
    }
}
