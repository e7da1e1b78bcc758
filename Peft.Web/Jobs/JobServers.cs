using Hangfire;
using Hangfire.AspNetCore;
using Microsoft.Extensions.Options;

namespace Peft.Web.Jobs;

/// <summary>
/// The Hangfire servers of this process, decided when the host starts (from the final configuration, so settings that
/// arrive after Program.cs ran, as in test hosts, count): none unless this is a worker or <c>Jobs:RunServer</c> is on;
/// then one server per queue with a worker count > 0, each fetching <c>q_high</c>, <c>q</c>, <c>q_low</c> in that order.
/// </summary>
internal sealed class JobServers(JobStorage storage, IServiceScopeFactory scopes, IOptions<JobsOptions> options, IConfiguration configuration,
    ILoggerFactory loggerFactory, ILogger<JobServers> logger) : IHostedService, IDisposable
{
    private readonly List<BackgroundJobServer> _servers = [];
    private IDisposable? _logging;

    /// <summary>Whether this process runs Hangfire servers (and so job recovery).</summary>
    public static bool Enabled(JobsOptions o, IConfiguration configuration) => o.RunServer || Extensions.JobsExtensions.IsWorker(configuration);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Hangfire's logging is process-wide: point it at this host before any Hangfire object asks for a logger.
        GlobalConfiguration.Configuration.UseLogProvider(HostLogProvider.Instance);
        _logging = HostLogProvider.Instance.Attach(loggerFactory);
        var o = options.Value;
        if (!Enabled(o, configuration)) return Task.CompletedTask;
        foreach (var (queue, workers) in o.Queues.Where(q => q.Value > 0))
        {
            var serverOptions = new BackgroundJobServerOptions
            {
                ServerName = $"{Environment.MachineName}:{Environment.ProcessId}:{queue}",
                WorkerCount = workers,
                Queues = [JobService.HangfireQueue(queue, 1), queue, JobService.HangfireQueue(queue, -1)],
                CancellationCheckInterval = TimeSpan.FromSeconds(1),
                ShutdownTimeout = o.StopGrace,
                // Jobs are resolved from this host's container (TrainingJobRunner and its scoped services).
                Activator = new AspNetCoreJobActivator(scopes),
            };
            _servers.Add(new BackgroundJobServer(serverOptions, storage));
            logger.LogInformation("Hangfire server for queue {Queue} started with {Workers} worker(s)", queue, workers);
        }
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var s in _servers) s.SendStop();
        return Task.WhenAll(_servers.Select(s => s.WaitForShutdownAsync(cancellationToken)));
    }

    public void Dispose()
    {
        foreach (var s in _servers) s.Dispose();
        _servers.Clear();
        _logging?.Dispose();
        _logging = null;
    }
}
