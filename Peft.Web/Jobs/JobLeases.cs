using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Query;
using Microsoft.Extensions.Options;
using Peft.Storage.Infrastructure;
using Peft.Storage.Model;

namespace Peft.Web.Jobs;

/// <summary>A held lease: the fencing token every write of this attempt is conditioned on.</summary>
public sealed record Lease(long JobId, string Owner, long Token);

/// <summary>
/// The job row as a lease. Every statement is a single conditional UPDATE, so two processes (or two Hangfire
/// deliveries in one process) racing for the same job cannot both win, on SQLite or PostgreSQL.
/// </summary>
public sealed class JobLeases(CatalogDbContext db, IOptions<JobsOptions> options, TimeProvider clock)
{
    public static string NewOwner() => $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";

    /// <summary>
    /// Takes the lease when nobody holds it or the holder's heartbeat is older than the lease timeout; null when a
    /// live owner has it or the job is no longer queued/running (a duplicate delivery then simply backs off).
    /// </summary>
    public async Task<Lease?> TryAcquireAsync(long jobId, string owner, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var stale = now - options.Value.LeaseTimeout;
        int won = await db.TrainingJobs
            .Where(j => j.Id == jobId && (j.State == JobState.Queued || j.State == JobState.Running) && !j.CancelRequested
                && (j.LeaseOwner == null || j.HeartbeatAt == null || j.HeartbeatAt < stale))
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.LeaseOwner, owner)
                .SetProperty(j => j.LeaseToken, j => j.LeaseToken + 1)
                .SetProperty(j => j.HeartbeatAt, now)
                .SetProperty(j => j.State, JobState.Running)
                .SetProperty(j => j.StartedAt, j => j.StartedAt ?? now)
                .SetProperty(j => j.UpdatedAt, now)
                .SetProperty(j => j.Attempt, j => j.Attempt + 1), ct);
        if (won == 0) return null;
        long token = await db.TrainingJobs.Where(j => j.Id == jobId && j.LeaseOwner == owner).Select(j => j.LeaseToken).SingleAsync(ct);
        db.JobLeases.Add(new JobLease { JobId = jobId, Token = token, Owner = owner, AcquiredAt = now, LastHeartbeatAt = now });
        await db.SaveChangesAsync(ct);
        db.ChangeTracker.Clear();
        return new Lease(jobId, owner, token);
    }

    /// <summary>Renews the heartbeat; false when the lease was lost (the attempt must stop without writing results).</summary>
    public async Task<bool> HeartbeatAsync(Lease lease, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        int kept = await db.TrainingJobs.Where(j => j.Id == lease.JobId && j.LeaseToken == lease.Token && j.LeaseOwner == lease.Owner)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.HeartbeatAt, now), ct);
        if (kept == 0) return false;
        await db.JobLeases.Where(l => l.JobId == lease.JobId && l.Token == lease.Token)
            .ExecuteUpdateAsync(s => s.SetProperty(l => l.LastHeartbeatAt, now), ct);
        return true;
    }

    public Task<bool> CancelRequestedAsync(long jobId, CancellationToken ct) =>
        db.TrainingJobs.Where(j => j.Id == jobId).Select(j => j.CancelRequested).SingleAsync(ct);

    /// <summary>
    /// Ends the attempt: sets the job's final fields through <paramref name="update"/> and frees the lease, only if
    /// this attempt still holds it. Returns false when fenced off.
    /// </summary>
    public async Task<bool> ReleaseAsync(Lease lease, string outcome, Action<UpdateSettersBuilder<TrainingJob>>? update, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        int done = await db.TrainingJobs.Where(j => j.Id == lease.JobId && j.LeaseToken == lease.Token && j.LeaseOwner == lease.Owner)
            .ExecuteUpdateAsync(s =>
            {
                s.SetProperty(j => j.LeaseOwner, (string?)null).SetProperty(j => j.HeartbeatAt, (DateTimeOffset?)null).SetProperty(j => j.UpdatedAt, now);
                update?.Invoke(s);
            }, ct);
        await db.JobLeases.Where(l => l.JobId == lease.JobId && l.Token == lease.Token)
            .ExecuteUpdateAsync(s => s.SetProperty(l => l.ReleasedAt, now).SetProperty(l => l.Outcome, done == 1 ? outcome : "fenced"), ct);
        return done == 1;
    }

    /// <summary>
    /// Jobs whose owner stopped heart-beating: their lease is cleared (one caller wins per job) and they go back to
    /// queued so a new delivery resumes them. Returns the ids reclaimed.
    /// </summary>
    public async Task<List<(long Id, string Queue, int Priority)>> ReclaimStaleAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var stale = now - options.Value.LeaseTimeout;
        var candidates = await db.TrainingJobs.AsNoTracking()
            // A silent owner, or no owner at all: a supervisor that released a crashed attempt and then died (or lost
            // its delivery) before taking the next lease leaves the job running with nobody on it.
            .Where(j => j.State == JobState.Running && (j.LeaseOwner != null ? j.HeartbeatAt < stale : j.UpdatedAt < stale))
            .Select(j => new { j.Id, j.LeaseToken, j.Queue, j.Priority }).ToListAsync(ct);
        var reclaimed = new List<(long, string, int)>();
        foreach (var c in candidates)
        {
            int won = await db.TrainingJobs.Where(j => j.Id == c.Id && j.LeaseToken == c.LeaseToken && j.State == JobState.Running
                    && (j.LeaseOwner != null ? j.HeartbeatAt < stale : j.UpdatedAt < stale))
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseOwner, (string?)null).SetProperty(j => j.HeartbeatAt, (DateTimeOffset?)null)
                    .SetProperty(j => j.State, JobState.Queued).SetProperty(j => j.UpdatedAt, now), ct);
            if (won == 0) continue;
            await db.JobLeases.Where(l => l.JobId == c.Id && l.Token == c.LeaseToken && l.ReleasedAt == null)
                .ExecuteUpdateAsync(s => s.SetProperty(l => l.ReleasedAt, now).SetProperty(l => l.Outcome, "lost"), ct);
            reclaimed.Add((c.Id, c.Queue, c.Priority));
        }
        return reclaimed;
    }
}
