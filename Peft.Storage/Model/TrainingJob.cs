namespace Peft.Storage.Model;

/// <summary>queued → running → succeeded | failed | cancelled; failed and cancelled jobs can be resumed (back to queued).</summary>
public enum JobState
{
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// <summary>
/// A fine-tuning job. The row is also its lease: <see cref="LeaseOwner"/> holds it while <see cref="HeartbeatAt"/>
/// is fresh, and every acquisition increments <see cref="LeaseToken"/> (the fencing token), so a supervisor that lost
/// its lease cannot register results or change the state.
/// </summary>
public sealed class TrainingJob
{
    public long Id { get; set; }
    public string? SubmittedBy { get; set; }
    public int BaseModelId { get; set; }
    public BaseModel BaseModel { get; set; } = null!;
    public int DatasetId { get; set; }
    public Dataset Dataset { get; set; } = null!;
    /// <summary>The dataset's sha256 at submission (what the run trains on).</summary>
    public required string DatasetSha256 { get; set; }
    public required string AdapterName { get; set; }
    public required string Method { get; set; }
    /// <summary>The <c>peft train --config</c> keys as submitted (without model, data, out).</summary>
    public required string ConfigJson { get; set; }
    /// <summary>Hangfire queue (cpu, gpu) and priority (higher first within the queue's workers).</summary>
    public required string Queue { get; set; }
    public int Priority { get; set; }
    public JobState State { get; set; }
    public string? Error { get; set; }
    /// <summary>True when the failure is deterministic (bad input): resuming it as is would fail again.</summary>
    public bool ErrorIsPermanent { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    /// <summary>Training processes started for this job (each resume from a checkpoint counts).</summary>
    public int Attempt { get; set; }
    /// <summary>Crashes since the last successful progress: the retry budget is counted on it.</summary>
    public int CrashCount { get; set; }
    public bool CancelRequested { get; set; }
    public string? LeaseOwner { get; set; }
    public long LeaseToken { get; set; }
    public DateTimeOffset? HeartbeatAt { get; set; }
    public int Step { get; set; }
    public int TotalSteps { get; set; }
    public double? LastLoss { get; set; }
    /// <summary>Newest checkpoint folder the run reported (resume starts there).</summary>
    public string? LastCheckpoint { get; set; }
    public long LastEventSeq { get; set; }
    public int? ResultVersionId { get; set; }
    public AdapterVersion? ResultVersion { get; set; }
    /// <summary>The version training continued from (init_adapter), for lineage.</summary>
    public int? ParentVersionId { get; set; }
    public AdapterVersion? ParentVersion { get; set; }
    /// <summary>The job this one was cloned from.</summary>
    public long? ClonedFromJobId { get; set; }
    public string? HangfireJobId { get; set; }
}

/// <summary>One training event (the child's JSON line) or log line, numbered per job for SSE resume.</summary>
public sealed class JobEvent
{
    public long Id { get; set; }
    public long JobId { get; set; }
    /// <summary>1, 2, 3 ... per job; the SSE event id.</summary>
    public long Seq { get; set; }
    public int Attempt { get; set; }
    /// <summary>start, step, eval, checkpoint, cancelled, done, log, state.</summary>
    public required string Type { get; set; }
    public int Step { get; set; }
    public double? Loss { get; set; }
    public double? LearningRate { get; set; }
    public double? GradNorm { get; set; }
    public double? TokensPerSecond { get; set; }
    public double? EvalLoss { get; set; }
    public required string Json { get; set; }
    public DateTimeOffset At { get; set; }
}

/// <summary>The lease log: one row per acquisition, so tests and operators can prove attempts never overlapped.</summary>
public sealed class JobLease
{
    public long Id { get; set; }
    public long JobId { get; set; }
    public long Token { get; set; }
    public required string Owner { get; set; }
    public DateTimeOffset AcquiredAt { get; set; }
    public DateTimeOffset LastHeartbeatAt { get; set; }
    public DateTimeOffset? ReleasedAt { get; set; }
    /// <summary>How the attempt ended (succeeded, cancelled, crashed, failed, lost); null while it runs or if its owner died.</summary>
    public string? Outcome { get; set; }
}
