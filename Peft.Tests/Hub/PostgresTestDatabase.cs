using Npgsql;
using Peft.Storage;

namespace Peft.Tests.Hub;

/// <summary>
/// A throw-away PostgreSQL database on the server named by env var <c>PEFT_TEST_POSTGRES</c> (a connection string
/// without a database, e.g. <c>Host=127.0.0.1;Username=postgres;Password=postgres</c>): created on construction,
/// dropped on dispose. <c>.ci/run</c> starts a local server and sets the variable.
/// </summary>
public sealed class PostgresTestDatabase : IDisposable
{
    public const string EnvVar = "PEFT_TEST_POSTGRES";
    public const string SkipReason = $"PostgreSQL tests need env var {EnvVar} (e.g. Host=127.0.0.1;Username=postgres;Password=postgres); .ci/run sets it";

    private readonly string _server;
    private readonly string _name;

    private PostgresTestDatabase(string server, string name, string connectionString)
    {
        _server = server;
        _name = name;
        ConnectionString = connectionString;
    }

    /// <summary>The server connection string, or null when the variable is unset (the tests are then skipped).</summary>
    public static string? Server => Environment.GetEnvironmentVariable(EnvVar) is { Length: > 0 } s ? s : null;

    /// <summary>False only for PostgreSQL without a configured server: then its tests are skipped, their fixtures idle.</summary>
    public static bool Usable(DatabaseProvider provider) => provider != DatabaseProvider.Postgres || Server is not null;

    public string ConnectionString { get; }

    public static PostgresTestDatabase Create()
    {
        var server = Server ?? throw new InvalidOperationException(SkipReason);
        var name = $"peft_test_{Guid.NewGuid():N}";
        using (var admin = new NpgsqlConnection(Admin(server)))
        {
            admin.Open();
            using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", admin);
            create.ExecuteNonQuery();
        }
        var connection = new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
        return new PostgresTestDatabase(server, name, connection);
    }

    public void Dispose()
    {
        // Pooled connections of the hub still hold the database open; close them, then drop it.
        NpgsqlConnection.ClearAllPools();
        using var admin = new NpgsqlConnection(Admin(_server));
        admin.Open();
        using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{_name}\" WITH (FORCE)", admin);
        drop.ExecuteNonQuery();
    }

    private static string Admin(string server) => new NpgsqlConnectionStringBuilder(server) { Database = "postgres", Pooling = false }.ConnectionString;
}

/// <summary>A fact that runs on PostgreSQL: skipped, with the reason, only when <c>PEFT_TEST_POSTGRES</c> is unset.</summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (PostgresTestDatabase.Server is null) Skip = PostgresTestDatabase.SkipReason;
    }
}

/// <summary>A theory that runs on PostgreSQL: skipped, with the reason, only when <c>PEFT_TEST_POSTGRES</c> is unset.</summary>
public sealed class PostgresTheoryAttribute : TheoryAttribute
{
    public PostgresTheoryAttribute()
    {
        if (PostgresTestDatabase.Server is null) Skip = PostgresTestDatabase.SkipReason;
    }
}
