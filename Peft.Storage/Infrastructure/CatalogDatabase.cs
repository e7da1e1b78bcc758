using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace Peft.Storage.Infrastructure;

/// <summary>Provider choice in one place, shared by the web host, the jobs host, tests and the EF tools.</summary>
public static class CatalogDatabase
{
    /// <summary>The SQLite file the hub uses when no connection string is configured.</summary>
    public static string DefaultSqliteConnection(string dataDir) =>
        $"Data Source={Path.Combine(Path.GetFullPath(dataDir), "catalog.db")}";

    /// <summary>
    /// A context for <paramref name="provider"/>: <see cref="CatalogDbContext"/> (SQLite migrations) or
    /// <see cref="PostgresCatalogDbContext"/> (PostgreSQL migrations). Services depend on the base type only.
    /// </summary>
    public static CatalogDbContext Create(DatabaseProvider provider, string connectionString, IServiceProvider? services = null)
    {
        switch (provider)
        {
            case DatabaseProvider.Sqlite:
            {
                var options = new DbContextOptionsBuilder<CatalogDbContext>();
                Configure(options, provider, connectionString, services);
                return new CatalogDbContext(options.Options);
            }
            case DatabaseProvider.Postgres:
            {
                var options = new DbContextOptionsBuilder<PostgresCatalogDbContext>();
                Configure(options, provider, connectionString, services);
                return new PostgresCatalogDbContext(options.Options);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(provider), provider, "unknown database provider");
        }
    }

    private static void Configure(DbContextOptionsBuilder options, DatabaseProvider provider, string connectionString, IServiceProvider? services)
    {
        if (services is not null)
        {
            // As AddDbContext would: the host's logging, and its services for EF's own lookups.
            options.UseApplicationServiceProvider(services);
            if (services.GetService(typeof(Microsoft.Extensions.Logging.ILoggerFactory)) is Microsoft.Extensions.Logging.ILoggerFactory logs)
                options.UseLoggerFactory(logs);
        }
        Configure(options, provider, connectionString);
    }

    public static void Configure(DbContextOptionsBuilder options, DatabaseProvider provider, string connectionString)
    {
        switch (provider)
        {
            case DatabaseProvider.Sqlite:
                options.UseSqlite(connectionString, o => o.MigrationsAssembly(typeof(CatalogDatabase).Assembly.FullName));
                break;
            case DatabaseProvider.Postgres:
                options.UseNpgsql(connectionString, o => o.MigrationsAssembly(typeof(CatalogDatabase).Assembly.FullName));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(provider), provider, "unknown database provider");
        }
    }

    /// <summary>Applies migrations; on SQLite also switches the file to WAL so readers never wait for the writer.</summary>
    public static async Task MigrateAsync(CatalogDbContext db, CancellationToken cancellationToken)
    {
        if (db.Database.IsSqlite())
        {
            var file = new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(db.Database.GetConnectionString()).DataSource;
            if (!string.IsNullOrEmpty(file) && Path.GetDirectoryName(Path.GetFullPath(file)) is { } dir) Directory.CreateDirectory(dir);
        }
        await db.Database.MigrateAsync(cancellationToken);
        if (db.Database.IsSqlite())
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken);
    }
}

/// <summary>For <c>dotnet ef migrations add</c>: a SQLite context on a scratch file.</summary>
internal sealed class CatalogDbContextDesignFactory : IDesignTimeDbContextFactory<CatalogDbContext>
{
    public CatalogDbContext CreateDbContext(string[] args)
    {
        var options = new DbContextOptionsBuilder<CatalogDbContext>();
        CatalogDatabase.Configure(options, DatabaseProvider.Sqlite, "Data Source=design-time.db");
        return new CatalogDbContext(options.Options);
    }
}

/// <summary>
/// For <c>dotnet ef migrations add X --context PostgresCatalogDbContext --output-dir Infrastructure/PostgresMigrations</c>;
/// generating a migration does not connect, so the connection string is only a placeholder.
/// </summary>
internal sealed class PostgresCatalogDbContextDesignFactory : IDesignTimeDbContextFactory<PostgresCatalogDbContext>
{
    public PostgresCatalogDbContext CreateDbContext(string[] args)
    {
        var options = new DbContextOptionsBuilder<PostgresCatalogDbContext>();
        CatalogDatabase.Configure(options, DatabaseProvider.Postgres, "Host=localhost;Database=peft_design_time");
        return new PostgresCatalogDbContext(options.Options);
    }
}
