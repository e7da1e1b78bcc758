using Hangfire;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Peft.Web.Jobs;

/// <summary>
/// Health check <c>workers</c> (tag <c>ready</c>): healthy while at least one Hangfire server, in this process or any
/// worker on the same storage, serves the <c>cpu</c> queue and has sent a heartbeat within <see cref="LiveWithin"/>.
/// </summary>
public sealed class WorkersHealthCheck(JobStorage storage, TimeProvider clock) : IHealthCheck
{
    public const string Name = "workers";
    public const string Queue = "cpu";
    /// <summary>Two of Hangfire's default 30-second server heartbeats.</summary>
    public static readonly TimeSpan LiveWithin = TimeSpan.FromMinutes(1);

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var since = clock.GetUtcNow().UtcDateTime - LiveWithin;
            var servers = storage.GetMonitoringApi().Servers();
            int live = servers.Count(s => s.Heartbeat is { } beat && beat >= since && s.Queues.Any(q => q == Queue || q.StartsWith(Queue + "_", StringComparison.Ordinal)));
            var data = new Dictionary<string, object> { ["servers"] = servers.Count, ["live_cpu_servers"] = live };
            return Task.FromResult(live > 0
                ? HealthCheckResult.Healthy($"{live} live server(s) for the {Queue} queue", data)
                : HealthCheckResult.Unhealthy($"no live Hangfire server serves the {Queue} queue ({servers.Count} known)", data: data));
        }
        catch (Exception e)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy("job storage unreachable", e));
        }
    }
}
