using Hangfire;
using Microsoft.Extensions.DependencyInjection;

namespace Peft.Tests.Jobs;

/// <summary>
/// Hangfire's logger provider is process-wide. A host disposed earlier in the same process (as tests do, one after
/// another) must not leave it pointing at a disposed logger factory, which made the next host's Hangfire server fail in
/// its constructor (seen in CI as ObjectDisposedException: 'LoggerFactory').
/// </summary>
public class HangfireLoggingTests
{
    [Fact]
    public void AHostStartsItsHangfireServerAfterAnotherHostInTheProcessWasDisposed()
    {
        using (var first = new JobsTestHub())
            _ = first.Factory.Services.GetRequiredService<IGlobalConfiguration>();   // Hangfire's global setup, as any use does

        // What a Hangfire object constructed now (by another host starting in parallel) asks for.
        var log = Hangfire.Logging.LogProvider.GetLogger("after-the-first-host");
        Assert.NotNull(log);

        using var second = new JobsTestHub();   // starts the host: its JobServers create BackgroundJobServers
        var servers = second.Factory.Services.GetRequiredService<JobStorage>().GetMonitoringApi().Servers();
        Assert.Contains(servers, s => s.Name.Contains($":{Environment.ProcessId}:cpu", StringComparison.Ordinal));
    }
}
