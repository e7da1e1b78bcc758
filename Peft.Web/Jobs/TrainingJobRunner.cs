using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Peft.Core.IO;
using Peft.Storage;
using Peft.Storage.Blobs;
using Peft.Storage.Infrastructure;
using Peft.Storage.Model;
using Peft.Storage.Services;
using Peft.Training.Training;

namespace Peft.Web.Jobs;

/// <summary>In-process signal so a cancel reaches a local supervisor at once (remote ones see the row's flag).</summary>
public sealed class LocalSupervisors
{
    private readonly ConcurrentDictionary<long, Action> _stop = new();
    public void Register(long jobId, Action stop) => _stop[jobId] = stop;
    public void Unregister(long jobId) => _stop.TryRemove(jobId, out _);
    public void Stop(long jobId) { if (_stop.TryGetValue(jobId, out var a)) a(); }
}

/// <summary>
/// The Hangfire job: takes the job's lease, runs training in a child process (resuming from the newest checkpoint),
/// persists its events, heart-beats, and ends the job: registers the adapter (fenced) → succeeded, or cancelled,
/// failed, or another attempt after a crash. Retries are this class's policy, not Hangfire's.
/// </summary>
public sealed class TrainingJobRunner(IServiceScopeFactory scopes, IOptions<JobsOptions> options, IOptions<CatalogOptions> catalog,
    LocalSupervisors local, JobMetrics metrics, IHostApplicationLifetime lifetime, TimeProvider clock, ILogger<TrainingJobRunner> logger)
{
    private JobsOptions O => options.Value;

    [AutomaticRetry(Attempts = 0)]
    [JobDisplayName("fine-tuning job {0}")]
    public async Task RunAsync(long jobId, CancellationToken ct)
    {
        while (true)
        {
            Lease? lease;
            await using (var scope = scopes.CreateAsyncScope())
                // Hangfire cancels `ct` when another delivery of this job moves it (invisibility redelivery), which says
                // nothing about this supervisor: only the host stopping ends the loop of attempts.
                lease = await scope.ServiceProvider.GetRequiredService<JobLeases>().TryAcquireAsync(jobId, JobLeases.NewOwner(), lifetime.ApplicationStopping);
            if (lease is null)
            {
                logger.LogInformation("Job {JobId}: a live owner holds it, or it is no longer queued; this delivery backs off", jobId);
                return;
            }
            if (!await RunAttemptAsync(lease)) return;
        }
    }

    /// <summary>One training process; true when another attempt should follow (after a crash, within the budget).</summary>
    private async Task<bool> RunAttemptAsync(Lease lease)
    {
        await using var scope = scopes.CreateAsyncScope();
        var sp = scope.ServiceProvider;
        var db = sp.GetRequiredService<CatalogDbContext>();
        TrainingProcess? child = null;
        bool cancelRequested = false, lost = false, shutdown = false;
        // Heart-beat from the moment the lease is held: preparing the attempt (first queries, copying a parent adapter)
        // can take long on a loaded machine, and a silent owner would be taken for dead.
        using var watch = new CancellationTokenSource();
        var watcher = WatchAsync(lease, () => child, () => cancelRequested = true, () => lost = true, watch.Token);
        TrainingJob job;
        JobEventWriter writer;
        JsonObject config;
        string outDir;
        int exitCode;
        await using var eventScope = scopes.CreateAsyncScope();
        try
        {
            job = await db.TrainingJobs.AsNoTracking().AsSplitQuery().Include(j => j.BaseModel).Include(j => j.Dataset)
                .Include(j => j.ParentVersion).ThenInclude(v => v!.Files).Include(j => j.ParentVersion).ThenInclude(v => v!.Adapter)
                .SingleAsync(j => j.Id == lease.JobId, CancellationToken.None);
            var queue = job.Queue;
            writer = new JobEventWriter(eventScope.ServiceProvider.GetRequiredService<CatalogDbContext>(), lease, job.LastEventSeq, job.Attempt, clock)
            {
                StepTook = d => metrics.StepTook(d, queue),
            };
            string configPath, workDir = JobFolders.WorkDir(catalog.Value.DataDir, job.Id);
            try
            {
                outDir = Path.Combine(workDir, "out");
                Directory.CreateDirectory(workDir);
                string dataPath = sp.GetRequiredService<DatasetService>().LocalPath(job.Dataset)
                    ?? throw new FileNotFoundException($"dataset '{job.Dataset.Name}' has no local file");

                config = JsonNode.Parse(job.ConfigJson)!.AsObject();
                config["model"] = job.BaseModel.Folder;
                config["data"] = dataPath;
                config["out"] = outDir;
                if (job.ParentVersion is { } parent)
                    config["init_adapter"] = await ParentAdapter.MaterializeAsync(parent, sp.GetRequiredService<IBlobStore>(), Path.Combine(workDir, "parent"), CancellationToken.None);
                if (config["save_every"] is null) config["save_every"] = O.DefaultSaveEvery;
                if (Directory.Exists(outDir) && CheckpointStore.Resolve(outDir) is not null) config["resume"] = outDir;
                configPath = Path.Combine(workDir, $"attempt-{lease.Token}.json");
                AtomicFile.WriteAllText(configPath, config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or Peft.Core.PeftUserException)
            {
                // The job's inputs are gone (a dataset blob, a parent adapter): no retry can bring them back.
                metrics.Failed(job.Queue);
                string error = "preparing the run: " + e.Message;
                await writer.AppendAsync(State("failed", error), CancellationToken.None);
                var failedAt = clock.GetUtcNow();
                await sp.GetRequiredService<JobLeases>().ReleaseAsync(lease, "failed", s => s.SetProperty(j => j.State, JobState.Failed)
                    .SetProperty(j => j.FinishedAt, failedAt).SetProperty(j => j.Error, error).SetProperty(j => j.ErrorIsPermanent, true), CancellationToken.None);
                return false;
            }
            if (lost) return false;
            var command = O.TrainerCommand is { Length: > 0 } c ? c.ToList() : TrainingProcess.DefaultCommand();
            command.AddRange(["--config", configPath]);
            child = TrainingProcess.Start(command, workDir);
            using var running = metrics.Running();
            logger.LogInformation("Job {JobId}: attempt {Attempt} (lease {Token}) started training process {Pid}{Resume}", job.Id, job.Attempt,
                lease.Token, child.Id, config["resume"] is null ? "" : " resuming from " + outDir);
            await writer.AppendAsync(new JsonObject { ["type"] = "attempt", ["attempt"] = job.Attempt, ["lease"] = lease.Token, ["pid"] = child.Id,
                ["resume"] = config["resume"]?.GetValue<string>() }, CancellationToken.None);

            void Stop() { cancelRequested = true; child.RequestStop(); }
            local.Register(job.Id, Stop);
            if (cancelRequested) child.RequestStop(); // asked while the attempt was being prepared
            // Hangfire's job token also fires when a redelivery of this job changes its state, which is not a reason to
            // stop training: only this host stopping is.
            await using var onShutdown = lifetime.ApplicationStopping.Register(() => { shutdown = true; child.RequestStop(); });
            await foreach (var (line, isError) in child.Lines.ReadAllAsync(CancellationToken.None))
            {
                if (lost) continue;
                if (!await writer.AppendAsync(line, isError, CancellationToken.None)) { lost = true; child.Kill(); }
            }
            exitCode = await WaitOrKillAsync(child);
        }
        finally
        {
            local.Unregister(lease.JobId);
            await watch.CancelAsync();
            try { await watcher; } catch (OperationCanceledException) { }
            child?.Dispose();
        }

        var leases = sp.GetRequiredService<JobLeases>();
        if (lost)
        {
            logger.LogWarning("Job {JobId}: lease {Token} was lost; this attempt stops without touching the job", job.Id, lease.Token);
            return false;
        }
        var now = clock.GetUtcNow();
        if (exitCode == TrainChild.Success && writer.LastDone is not null)
            return await SucceedAsync(sp, lease, job, outDir, config, writer, CancellationToken.None);
        // A cancel wins over however the trainer ended (a SIGTERM before its handler existed exits 143, not 130): the job
        // stops as asked, from its last checkpoint, instead of being retried as a crash.
        if ((cancelRequested || await leases.CancelRequestedAsync(job.Id, CancellationToken.None)))
        {
            metrics.Cancelled(job.Queue);
            await writer.AppendAsync(State("cancelled", null), CancellationToken.None);
            await leases.ReleaseAsync(lease, "cancelled", s => s.SetProperty(j => j.State, JobState.Cancelled).SetProperty(j => j.FinishedAt, now)
                .SetProperty(j => j.CancelRequested, false), CancellationToken.None);
            return false;
        }
        if (shutdown)
        {
            // This host is stopping: give the job back (queued, lease free) with a new delivery, which a live worker (or
            // this one after its restart) takes up from the last checkpoint.
            if (await leases.ReleaseAsync(lease, "shutdown", s => s.SetProperty(j => j.State, JobState.Queued), CancellationToken.None))
                sp.GetRequiredService<IBackgroundJobClient>().Create<TrainingJobRunner>(r => r.RunAsync(job.Id, CancellationToken.None),
                    new Hangfire.States.EnqueuedState(JobService.HangfireQueue(job.Queue, job.Priority)));
            return false;
        }
        if (exitCode == TrainChild.BadInput)
        {
            metrics.Failed(job.Queue);
            string error = writer.LastError ?? "training rejected its input (exit code 2)";
            await writer.AppendAsync(State("failed", error), CancellationToken.None);
            await leases.ReleaseAsync(lease, "failed", s => s.SetProperty(j => j.State, JobState.Failed).SetProperty(j => j.FinishedAt, now)
                .SetProperty(j => j.Error, error).SetProperty(j => j.ErrorIsPermanent, true), CancellationToken.None);
            return false;
        }
        // Killed, out of memory, native fault, unexpected exception: transient until the budget says otherwise.
        string crash = CrashMessage(exitCode, writer.LastError);
        bool retry = job.CrashCount < O.MaxCrashRetries;
        await writer.AppendAsync(State(retry ? "crashed" : "failed", crash), CancellationToken.None);
        if (retry)
        {
            await leases.ReleaseAsync(lease, "crashed", s => s.SetProperty(j => j.CrashCount, j => j.CrashCount + 1).SetProperty(j => j.Error, crash),
                CancellationToken.None);
            logger.LogWarning("Job {JobId}: {Crash}; resuming from the last checkpoint", job.Id, crash);
            return true;
        }
        metrics.Failed(job.Queue);
        await leases.ReleaseAsync(lease, "failed", s => s.SetProperty(j => j.State, JobState.Failed).SetProperty(j => j.FinishedAt, now)
            .SetProperty(j => j.Error, $"{crash} (gave up after {O.MaxCrashRetries} retries)").SetProperty(j => j.ErrorIsPermanent, false), CancellationToken.None);
        return false;
    }

    private static JsonObject State(string state, string? error) => new() { ["type"] = "state", ["state"] = state, ["message"] = error };

    private static string CrashMessage(int exitCode, string? error) => exitCode switch
    {
        137 => "training process was killed (SIGKILL: out of memory or killed)",
        134 => "training process aborted (SIGABRT: native crash)",
        139 => "training process crashed (SIGSEGV: native crash)",
        _ => error is null ? $"training process exited with code {exitCode}" : $"training failed: {error}",
    };

    private async Task<int> WaitOrKillAsync(TrainingProcess child)
    {
        using var grace = new CancellationTokenSource(O.StopGrace);
        try { return await child.WaitAsync(grace.Token); }
        catch (OperationCanceledException)
        {
            child.Kill();
            return await child.WaitAsync(CancellationToken.None);
        }
    }

    /// <summary>Heartbeat every HeartbeatInterval; cancel flag every 250 ms (a remote cancel must stop within 5 s).</summary>
    private async Task WatchAsync(Lease lease, Func<TrainingProcess?> child, Action onCancel, Action onLost, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var leases = scope.ServiceProvider.GetRequiredService<JobLeases>();
        var lastBeat = DateTimeOffset.MinValue; // the first beat at once
        bool stopping = false;
        while (!ct.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(250), ct);
            if (!stopping && await leases.CancelRequestedAsync(lease.JobId, ct))
            {
                stopping = true;
                onCancel();
                child()?.RequestStop();
            }
            if (clock.GetUtcNow() - lastBeat < O.HeartbeatInterval) continue;
            lastBeat = clock.GetUtcNow();
            if (!await leases.HeartbeatAsync(lease, ct))
            {
                onLost();
                child()?.Kill();
                return;
            }
        }
    }

    private async Task<bool> SucceedAsync(IServiceProvider sp, Lease lease, TrainingJob job, string outDir, JsonObject config,
        JobEventWriter writer, CancellationToken ct)
    {
        var db = sp.GetRequiredService<CatalogDbContext>();
        var leases = sp.GetRequiredService<JobLeases>();
        // Fence before writing anything visible: a stale supervisor must not register a version.
        if (!await leases.HeartbeatAsync(lease, ct)) return false;
        // A version this job already registered (its owner died between registration and the state change) is reused,
        // so a job never produces two versions.
        var version = await db.AdapterVersions.AsNoTracking()
            .Where(v => v.SourceJobId == job.Id && v.State == VersionState.Ready && v.DeletedAt == null).FirstOrDefaultAsync(ct);
        if (version is null)
        {
            var evalMetrics = writer.LastDone?.Where(kv => kv.Key.StartsWith("eval_", StringComparison.Ordinal) && kv.Value is JsonValue v && v.TryGetValue<double>(out _))
                .ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<double>());
            try
            {
                version = await sp.GetRequiredService<AdapterCatalog>().RegisterAsync(job.AdapterName,
                    Path.Combine(outDir, "adapter_config.json"), Path.Combine(outDir, "adapter_model.safetensors"), job.BaseModel.Name,
                    new VersionProvenance
                    {
                        CreatedBy = job.SubmittedBy,
                        SourceJobId = job.Id,
                        SourceDatasetId = job.DatasetId,
                        ParentReference = job.ParentVersion is { } p ? ParentAdapter.Reference(p) : null,
                        TrainingConfigJson = config.ToJsonString(),
                        Metrics = evalMetrics,
                        Description = $"trained by job {job.Id}",
                    }, ct);
            }
            catch (Peft.Core.PeftUserException e)
            {
                var failedAt = clock.GetUtcNow();
                metrics.Failed(job.Queue);
                await writer.AppendAsync(State("failed", e.Message), CancellationToken.None);
                await leases.ReleaseAsync(lease, "failed", s => s.SetProperty(j => j.State, JobState.Failed).SetProperty(j => j.FinishedAt, failedAt)
                    .SetProperty(j => j.Error, "registering the adapter: " + e.Message).SetProperty(j => j.ErrorIsPermanent, true), CancellationToken.None);
                return false;
            }
        }
        int versionId = version.Id;
        var now = clock.GetUtcNow();
        await writer.AppendAsync(new JsonObject { ["type"] = "state", ["state"] = "succeeded", ["version_id"] = versionId }, CancellationToken.None);
        bool ok = await leases.ReleaseAsync(lease, "succeeded", s => s.SetProperty(j => j.State, JobState.Succeeded).SetProperty(j => j.FinishedAt, now)
            .SetProperty(j => j.ResultVersionId, versionId).SetProperty(j => j.Error, (string?)null), CancellationToken.None);
        if (ok) metrics.Succeeded(job.Queue);
        logger.LogInformation("Job {JobId}: succeeded with adapter version {VersionId} (fenced: {Fenced})", job.Id, versionId, !ok);
        return false;
    }
}

/// <summary>Where a job's files live: configs per attempt, the trainer's output folder with its checkpoints.</summary>
public static class JobFolders
{
    public static string WorkDir(string dataDir, long jobId) => Path.Combine(dataDir, "jobs", jobId.ToString(System.Globalization.CultureInfo.InvariantCulture));
}
