using System.Globalization;
using Microsoft.AspNetCore.SignalR;
using Microsoft.EntityFrameworkCore;
using Peft.Storage.Infrastructure;

namespace Peft.Web.Jobs;

/// <summary>SignalR hub at <c>/hubs/jobs</c> (hub:read): <c>Subscribe(jobId)</c>, then <c>event</c> messages (seq, type, json) arrive.</summary>
public sealed class JobsHub : Hub
{
    public static string Group(long jobId) => "job-" + jobId.ToString(CultureInfo.InvariantCulture);

    public Task Subscribe(long jobId) => Groups.AddToGroupAsync(Context.ConnectionId, Group(jobId));

    public Task Unsubscribe(long jobId) => Groups.RemoveFromGroupAsync(Context.ConnectionId, Group(jobId));
}

/// <summary>
/// Tails the events table and publishes new rows through <see cref="JobNotifications"/> (pages and SignalR groups).
/// Reading the table (not an in-process callback) means events of supervisors in worker-only processes on other
/// machines reach this web process's browsers too.
/// </summary>
internal sealed class JobEventRelay(IServiceScopeFactory scopes, JobNotifications notifications, ILogger<JobEventRelay> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        long lastId;
        await using (var scope = scopes.CreateAsyncScope())
            lastId = await MaxIdAsync(scope.ServiceProvider.GetRequiredService<CatalogDbContext>(), stoppingToken);
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<CatalogDbContext>();
                var batch = await db.JobEvents.AsNoTracking().Where(e => e.Id > lastId).OrderBy(e => e.Id).Take(500).ToListAsync(stoppingToken);
                foreach (var e in batch)
                {
                    await notifications.PublishAsync(new JobEventMessage(e.JobId, e.Seq, e.Type, e.Json), stoppingToken);
                    lastId = e.Id;
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Relaying job events failed; retrying");
            }
        }
    }

    private static async Task<long> MaxIdAsync(CatalogDbContext db, CancellationToken ct)
    {
        try { return await db.JobEvents.MaxAsync(e => (long?)e.Id, ct) ?? 0; }
        catch (Exception e) when (e is not OperationCanceledException) { return 0; } // before migrations ran
    }
}
