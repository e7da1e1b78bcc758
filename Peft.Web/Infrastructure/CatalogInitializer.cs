using Microsoft.Extensions.Options;
using Peft.Storage;
using Peft.Storage.Infrastructure;
using Peft.Storage.Services;

namespace Peft.Web.Infrastructure;

/// <summary>On start: apply migrations, fail registrations a crash left pending, register the bundled defaults.</summary>
internal sealed class CatalogInitializer(IServiceScopeFactory scopes, IOptions<CatalogOptions> options, ILogger<CatalogInitializer> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<CatalogDbContext>();
        await CatalogDatabase.MigrateAsync(db, cancellationToken);
        var recovered = await scope.ServiceProvider.GetRequiredService<AdapterCatalog>().FailStalePendingAsync(cancellationToken);
        if (recovered > 0) logger.LogWarning("Marked {Count} stale pending adapter versions as failed", recovered);
        if (options.Value.SeedDefaults)
            await scope.ServiceProvider.GetRequiredService<CatalogSeeder>().SeedAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
