using System.Text.Json.Nodes;
using Hangfire;
using Hangfire.States;
using Microsoft.EntityFrameworkCore;
using Peft.Core;
using Peft.Storage.Infrastructure;
using Peft.Storage.Model;
using Peft.Web.Apis;

namespace Peft.Web.Jobs;

public sealed record JobQuery
{
    public JobState? State { get; init; }
    public string? BaseModel { get; init; }
    public string? Adapter { get; init; }
    public string? SubmittedBy { get; init; }
    public string? Queue { get; init; }
    public int Page { get; init; } = 1;
    public int PageSize { get; init; } = 20;
}

/// <summary>
/// The jobs façade the REST API and the browser pages share (scoped; no DbContext in the caller): submit, list, get,
/// events, metrics, logs, cancel, resume and clone, all returning DTOs. It makes the state changes a user asks for; the
/// runner makes the others. <paramref name="user"/>-taking methods record the caller as the job's submitter.
/// </summary>
public sealed class JobService(CatalogDbContext db, JobRequestValidator validator, IBackgroundJobClient hangfire, LocalSupervisors local,
    JobMetrics metrics, TimeProvider clock)
{
    /// <summary>Validates <paramref name="body"/> (the POST /api/jobs JSON) and queues it; nothing is stored when it is refused.</summary>
    public Task<JobDto> SubmitAsync(JsonNode? body, string? user, CancellationToken ct) => SubmitAsync(body, user, null, ct);

    private async Task<JobDto> SubmitAsync(JsonNode? body, string? user, long? clonedFrom, CancellationToken ct)
    {
        var v = await validator.ValidateAsync(body, user, ct);
        var now = clock.GetUtcNow();
        var job = new TrainingJob
        {
            SubmittedBy = v.SubmittedBy,
            BaseModelId = v.BaseModel.Id,
            DatasetId = v.Dataset.Id,
            DatasetSha256 = v.Dataset.Sha256,
            AdapterName = v.AdapterName,
            Method = v.Method,
            ConfigJson = v.Config.ToJsonString(),
            Queue = v.Queue,
            Priority = v.Priority,
            ParentVersionId = v.Parent?.Id,
            State = JobState.Queued,
            CreatedAt = now,
            UpdatedAt = now,
            ClonedFromJobId = clonedFrom,
        };
        db.TrainingJobs.Add(job);
        await db.SaveChangesAsync(ct);
        await EnqueueAsync(job, ct);
        metrics.Submitted(job.Queue);
        return await GetAsync(job.Id, ct);
    }

    /// <summary>Hangfire queue for a job: the resource queue, split by priority (servers fetch high before normal before low).</summary>
    public static string HangfireQueue(string queue, int priority) => priority switch { > 0 => queue + "_high", < 0 => queue + "_low", _ => queue };

    private async Task EnqueueAsync(TrainingJob job, CancellationToken ct)
    {
        string id = hangfire.Create<TrainingJobRunner>(r => r.RunAsync(job.Id, CancellationToken.None), new EnqueuedState(HangfireQueue(job.Queue, job.Priority)));
        job.HangfireJobId = id;
        await db.TrainingJobs.Where(j => j.Id == job.Id).ExecuteUpdateAsync(s => s.SetProperty(j => j.HangfireJobId, id), ct);
    }

    public async Task<JobDto> GetAsync(long id, CancellationToken ct)
    {
        var job = await FindAsync(id, ct);
        return JobDto.From(job, await EtaAsync(job, ct));
    }

    private async Task<TrainingJob> FindAsync(long id, CancellationToken ct) =>
        await db.TrainingJobs.AsNoTracking().Include(j => j.BaseModel).Include(j => j.Dataset).Include(j => j.ResultVersion).ThenInclude(v => v!.Adapter)
            .Include(j => j.ParentVersion).ThenInclude(v => v!.Adapter).FirstOrDefaultAsync(j => j.Id == id, ct)
        ?? throw new PeftUserException($"job {id} not found", UserErrorKind.NotFound);

    public async Task<JobPageDto> ListAsync(JobQuery q, CancellationToken ct)
    {
        if (q.Page < 1 || q.PageSize is < 1 or > 200) throw new PeftUserException("page must be ≥ 1 and page_size in 1..200", UserErrorKind.BadRequest);
        var jobs = db.TrainingJobs.AsNoTracking().Include(j => j.BaseModel).Include(j => j.Dataset).Include(j => j.ResultVersion).ThenInclude(v => v!.Adapter)
            .AsQueryable();
        if (q.State is { } st) jobs = jobs.Where(j => j.State == st);
        if (q.BaseModel is { } b) jobs = jobs.Where(j => j.BaseModel.Name == b);
        if (q.Adapter is { } a) jobs = jobs.Where(j => j.AdapterName == a);
        if (q.SubmittedBy is { } u) jobs = jobs.Where(j => j.SubmittedBy == u);
        if (q.Queue is { } queue) jobs = jobs.Where(j => j.Queue == queue);
        int total = await jobs.CountAsync(ct);
        var items = await jobs.OrderByDescending(j => j.Id).Skip((q.Page - 1) * q.PageSize).Take(q.PageSize).ToListAsync(ct);
        return new JobPageDto(items.Select(j => JobDto.From(j)).ToList(), q.Page, q.PageSize, total);
    }

    /// <summary>Queued: cancelled at once. Running: the supervisor stops the trainer (it checkpoints) and marks it cancelled.</summary>
    public async Task<JobDto> CancelAsync(long id, CancellationToken ct)
    {
        var job = await FindAsync(id, ct);
        var now = clock.GetUtcNow();
        if (job.State == JobState.Queued)
        {
            int n = await db.TrainingJobs.Where(j => j.Id == id && j.State == JobState.Queued && j.LeaseOwner == null)
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.State, JobState.Cancelled).SetProperty(j => j.FinishedAt, now).SetProperty(j => j.UpdatedAt, now), ct);
            if (n == 1)
            {
                metrics.Cancelled(job.Queue);
                return await GetAsync(id, ct);
            }
        }
        int flagged = await db.TrainingJobs.Where(j => j.Id == id && (j.State == JobState.Running || j.State == JobState.Queued))
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.CancelRequested, true).SetProperty(j => j.UpdatedAt, now), ct);
        if (flagged == 0) throw new PeftUserException($"job {id} is {job.State.ToString().ToLowerInvariant()}; only queued or running jobs can be cancelled", UserErrorKind.Conflict);
        local.Stop(id);
        return await GetAsync(id, ct);
    }

    /// <summary>A failed or cancelled job goes back to the queue and continues from its newest checkpoint.</summary>
    public async Task<JobDto> ResumeAsync(long id, CancellationToken ct)
    {
        var job = await FindAsync(id, ct);
        if (job.State is not (JobState.Failed or JobState.Cancelled))
            throw new PeftUserException($"job {id} is {job.State.ToString().ToLowerInvariant()}; only failed or cancelled jobs can be resumed", UserErrorKind.Conflict);
        if (job.ErrorIsPermanent)
            throw new PeftUserException($"job {id} failed on its input ({job.Error}); resuming would fail the same way: clone it with corrected settings", UserErrorKind.Conflict);
        var now = clock.GetUtcNow();
        int n = await db.TrainingJobs.Where(j => j.Id == id && (j.State == JobState.Failed || j.State == JobState.Cancelled) && j.LeaseOwner == null)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.State, JobState.Queued).SetProperty(j => j.CancelRequested, false).SetProperty(j => j.CrashCount, 0)
                .SetProperty(j => j.Error, (string?)null).SetProperty(j => j.FinishedAt, (DateTimeOffset?)null).SetProperty(j => j.UpdatedAt, now), ct);
        if (n == 0) throw new PeftUserException($"job {id} changed state; try again", UserErrorKind.Conflict);
        job.State = JobState.Queued;
        await EnqueueAsync(job, ct);
        return await GetAsync(id, ct);
    }

    /// <summary>A new job with the original's request, edited by <paramref name="edits"/> (keys set to null are removed).</summary>
    public async Task<JobDto> CloneAsync(long id, JsonObject? edits, string? user, CancellationToken ct)
    {
        var job = await FindAsync(id, ct);
        var request = JsonNode.Parse(job.ConfigJson)!.AsObject();
        request["base_model"] = job.BaseModel.Name;
        request["dataset"] = job.Dataset.Name;
        request["adapter_name"] = job.AdapterName;
        request["queue"] = job.Queue;
        request["priority"] = job.Priority switch { > 0 => "high", < 0 => "low", _ => "normal" };
        if (job.ParentVersion is { } parent) request["parent"] = $"{parent.Adapter.Name}@{parent.Number}";
        foreach (var (k, v) in edits ?? [])
        {
            if (v is null) request.Remove(k);
            else request[k] = v.DeepClone();
        }
        return await SubmitAsync(request, user, id, ct);
    }

    /// <summary>Persisted events after sequence number <paramref name="after"/>, oldest first (404 for an unknown job).</summary>
    public async Task<IReadOnlyList<JobEventDto>> EventsAsync(long id, long after, int max, CancellationToken ct)
    {
        await EnsureExistsAsync(id, ct);
        var events = await db.JobEvents.AsNoTracking().Where(e => e.JobId == id && e.Seq > after).OrderBy(e => e.Seq).Take(max).ToListAsync(ct);
        return events.Select(JobEventDto.From).ToList();
    }

    /// <summary>True once the job is finished and every one of its events has a sequence number ≤ <paramref name="seq"/>.</summary>
    public async Task<bool> IsFinishedThroughAsync(long id, long seq, CancellationToken ct)
    {
        var j = await db.TrainingJobs.AsNoTracking().Where(j => j.Id == id).Select(j => new { j.State, j.LastEventSeq }).FirstOrDefaultAsync(ct);
        return j is null || (j.State is JobState.Succeeded or JobState.Failed or JobState.Cancelled && j.LastEventSeq <= seq);
    }

    /// <summary>Metric series: one point per step and per evaluation, all attempts in order.</summary>
    public async Task<JobMetricsDto> MetricsAsync(long id, CancellationToken ct)
    {
        await EnsureExistsAsync(id, ct);
        var points = await db.JobEvents.AsNoTracking().Where(e => e.JobId == id && (e.Type == "step" || e.Type == "eval")).OrderBy(e => e.Seq)
            .Select(e => new { e.Type, Point = new MetricPoint(e.Step, e.Loss, e.LearningRate, e.GradNorm, e.TokensPerSecond, e.EvalLoss, e.Attempt) })
            .ToListAsync(ct);
        return new JobMetricsDto(points.Where(p => p.Type == "step").Select(p => p.Point).ToList(), points.Where(p => p.Type == "eval").Select(p => p.Point).ToList());
    }

    /// <summary>The job's log as text: every event and every stderr line of its training processes, with time and attempt.</summary>
    public async Task<string> LogsAsync(long id, CancellationToken ct)
    {
        var text = new System.Text.StringBuilder();
        foreach (var e in await EventsAsync(id, 0, int.MaxValue, ct))
            text.Append(e.At.ToString("O", System.Globalization.CultureInfo.InvariantCulture)).Append(" [").Append(e.Attempt).Append("] ").Append(e.Json).Append('\n');
        return text.ToString();
    }

    private async Task EnsureExistsAsync(long id, CancellationToken ct)
    {
        if (!await db.TrainingJobs.AnyAsync(j => j.Id == id, ct)) throw new PeftUserException($"job {id} not found", UserErrorKind.NotFound);
    }

    /// <summary>Seconds per step over the last steps of the current attempt times the steps left.</summary>
    private async Task<TimeSpan?> EtaAsync(TrainingJob job, CancellationToken ct)
    {
        if (job.State != JobState.Running || job.TotalSteps <= 0) return null;
        var recent = await db.JobEvents.AsNoTracking().Where(e => e.JobId == job.Id && e.Type == "step" && e.Attempt == job.Attempt)
            .OrderByDescending(e => e.Seq).Take(20).Select(e => new { e.Step, e.At }).ToListAsync(ct);
        if (recent.Count < 2) return null;
        var (last, first) = (recent[0], recent[^1]);
        int steps = last.Step - first.Step;
        if (steps <= 0) return null;
        double perStep = (last.At - first.At).TotalSeconds / steps;
        return TimeSpan.FromSeconds(perStep * Math.Max(0, job.TotalSteps - last.Step));
    }
}
