using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Peft.Storage;
using Peft.Storage.Infrastructure;

namespace Peft.Tests.Hub;

/// <summary>The round-trip hub (every golden base registered) on a fresh PostgreSQL database.</summary>
public sealed class PostgresGoldenHubFixture() : GoldenHubFixture(DatabaseProvider.Postgres);

/// <summary>The malformed-upload hub on a fresh PostgreSQL database.</summary>
public sealed class PostgresMalformedUploadFixture() : MalformedUploadFixture(DatabaseProvider.Postgres);

/// <summary>
/// The catalog's acceptance checks, run on a real PostgreSQL server (its own migration set,
/// <c>Infrastructure/PostgresMigrations</c>): the same test bodies as the SQLite tests, each on its own database.
/// </summary>
public class PostgresCatalogTests
{
    [Fact]
    public void EachProvidersMigrationsMatchTheModel()
    {
        // No connection is opened: this compares the last migration's snapshot with the current model.
        foreach (var (provider, connection) in new[] { (DatabaseProvider.Sqlite, "Data Source=unused.db"), (DatabaseProvider.Postgres, "Host=unused;Database=unused") })
        {
            using var db = CatalogDatabase.Create(provider, connection);
            Assert.False(db.Database.HasPendingModelChanges(), $"{provider}: the model changed since the last migration; add one for each provider");
            Assert.NotEmpty(db.Database.GetMigrations());
        }
    }

    [PostgresFact]
    public async Task HubStartsOnAFreshDatabaseWithAllPostgresMigrationsApplied()
    {
        using var hub = new HubFactory(provider: DatabaseProvider.Postgres);
        using var client = hub.CreateClient(); // starts the host: migrations, seeding of the admin user
        await using var scope = hub.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<CatalogDbContext>();
        Assert.IsType<PostgresCatalogDbContext>(db);
        Assert.True(db.Database.IsNpgsql());
        Assert.Empty(await db.Database.GetPendingMigrationsAsync());
        Assert.Equal(db.Database.GetMigrations(), await db.Database.GetAppliedMigrationsAsync());
    }

    [PostgresFact]
    public async Task EightThreadsRegisteringOneAdapterGetGaplessNumbers()
    {
        using var hub = new HubFactory(provider: DatabaseProvider.Postgres);
        await CatalogConcurrencyTests.GaplessUnderConcurrencyAsync(hub);
    }

    [PostgresFact]
    public async Task AliasMovesAreAllRecordedAndProductionResolvesToTheNewVersion()
    {
        using var hub = new HubFactory(provider: DatabaseProvider.Postgres);
        await CatalogLifecycleTests.AliasMovesAsync(hub);
    }
}

/// <summary>Every malformed-upload kind, on PostgreSQL: refused with a problem naming it, row and blob counts unchanged.</summary>
public class PostgresMalformedUploadTests(PostgresMalformedUploadFixture fixture) : IClassFixture<PostgresMalformedUploadFixture>
{
    [PostgresTheory, MemberData(nameof(MalformedUploadTests.Names), MemberType = typeof(MalformedUploadTests))]
    public Task IsRefusedWithAProblemNamingItAndNothingChanges(string kind) => MalformedUploadTests.AssertRefusedAsync(fixture, kind);
}

/// <summary>Upload → download on PostgreSQL of one adapter per method family: byte-identical, golden logits.</summary>
public class PostgresCatalogRoundTripTests(PostgresGoldenHubFixture fixture) : IClassFixture<PostgresGoldenHubFixture>
{
    [PostgresTheory]
    [InlineData("llama_lora")]
    [InlineData("bert_ia3")]
    [InlineData("llama_prompt_tuning")]
    public Task UploadDownloadIsByteIdenticalAndLoadsWithGoldenLogits(string caseName) => CatalogRoundTripTests.RoundTripAsync(fixture, caseName);
}
