using Hangfire;
using Hangfire.States;
using Microsoft.Extensions.Options;

namespace Peft.Web.Jobs;

/// <summary>
/// Runs in every process with a Hangfire server: jobs whose supervisor stopped heart-beating (process killed, machine
/// gone) are reclaimed and enqueued again within LeaseTimeout + RecoveryInterval, instead of waiting for the storage's
/// invisibility timeout (30 min on SQLite). The new delivery resumes from the newest checkpoint.
/// </summary>
internal sealed class JobRecovery(IServiceScopeFactory scopes, IBackgroundJobClient hangfire, IOptions<JobsOptions> options,
    IConfiguration configuration, ILogger<JobRecovery> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!JobServers.Enabled(options.Value, configuration)) return; // only processes that run jobs recover them
        using var timer = new PeriodicTimer(options.Value.RecoveryInterval);
        do
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                var reclaimed = await scope.ServiceProvider.GetRequiredService<JobLeases>().ReclaimStaleAsync(stoppingToken);
                foreach (var (id, queue, priority) in reclaimed)
                {
                    hangfire.Create<TrainingJobRunner>(r => r.RunAsync(id, CancellationToken.None), new EnqueuedState(JobService.HangfireQueue(queue, priority)));
                    logger.LogWarning("Job {JobId}: its owner stopped heart-beating; re-enqueued to resume from the last checkpoint", id);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError(e, "Job recovery pass failed");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
