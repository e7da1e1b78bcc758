using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Peft.Storage;
using Peft.Storage.Infrastructure;
using Peft.Web.Extensions;

namespace Peft.Web.Infrastructure;

/// <summary>The catalog database answers a query on a catalog table (so a reachable server with a missing schema is not ready).</summary>
internal sealed class DatabaseHealthCheck(IServiceScopeFactory scopes) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<CatalogDbContext>();
            await db.Users.AnyAsync(cancellationToken);
            return HealthCheckResult.Healthy($"{db.Database.ProviderName} answers");
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return HealthCheckResult.Unhealthy($"catalog database: {e.Message}");
        }
    }
}

/// <summary>The blob folder takes a write: a probe file is created in its temp folder, flushed and removed.</summary>
internal sealed class BlobStoreHealthCheck(IOptions<CatalogOptions> options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        string tmp = Path.Combine(HubServiceExtensions.BlobRoot(options.Value), "tmp");
        string probe = Path.Combine(tmp, $"health-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(tmp);
            await File.WriteAllBytesAsync(probe, [1], cancellationToken);
            File.Delete(probe);
            return HealthCheckResult.Healthy($"{tmp} is writable");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return HealthCheckResult.Unhealthy($"blob store {tmp}: {e.Message}");
        }
    }
}
