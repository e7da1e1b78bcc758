using System.Text.Json.Nodes;
using Peft.Storage.Model;

namespace Peft.Web.Apis;

/// <summary>A fine-tuning job as the API returns it.</summary>
public sealed record JobDto(long Id, string State, string BaseModel, string Dataset, string DatasetSha256, string AdapterName, string Method,
    JsonNode? Config, string Queue, string Priority, string? SubmittedBy, int Attempt, int Step, int TotalSteps, double? LastLoss,
    double? EtaSeconds, string? Error, bool ErrorIsPermanent, bool CancelRequested, string? LastCheckpoint, string? ResultVersion,
    long? ClonedFrom, DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, DateTimeOffset UpdatedAt)
{
    public static JobDto From(TrainingJob j, TimeSpan? eta = null) =>
        new(j.Id, j.State.ToString().ToLowerInvariant(), j.BaseModel.Name, j.Dataset.Name, j.DatasetSha256, j.AdapterName, j.Method,
            JsonNode.Parse(j.ConfigJson), j.Queue, j.Priority switch { > 0 => "high", < 0 => "low", _ => "normal" }, j.SubmittedBy,
            j.Attempt, j.Step, j.TotalSteps, j.LastLoss, eta?.TotalSeconds, j.Error, j.ErrorIsPermanent, j.CancelRequested,
            j.LastCheckpoint is null ? null : Path.GetFileName(j.LastCheckpoint),
            j.ResultVersion is { } v ? $"{v.Adapter.Name}@{v.Number}" : null, j.ClonedFromJobId, j.CreatedAt, j.StartedAt, j.FinishedAt, j.UpdatedAt);
}

public sealed record JobPageDto(IReadOnlyList<JobDto> Items, int Page, int PageSize, int Total);

/// <summary>Metric series of a job, one point per step/evaluation event (all attempts, in order).</summary>
public sealed record JobMetricsDto(IReadOnlyList<MetricPoint> Train, IReadOnlyList<MetricPoint> Eval);

public sealed record MetricPoint(int Step, double? Loss, double? LearningRate, double? GradNorm, double? TokensPerSecond, double? EvalLoss, int Attempt);

/// <summary>One persisted job event: <see cref="Seq"/> is the SSE id, <see cref="Json"/> the event as the trainer or supervisor wrote it.</summary>
public sealed record JobEventDto(long Seq, int Attempt, string Type, int Step, DateTimeOffset At, string Json)
{
    public static JobEventDto From(JobEvent e) => new(e.Seq, e.Attempt, e.Type, e.Step, e.At, e.Json);
}
