using Hangfire;
using Hangfire.PostgreSql;
using Hangfire.PostgreSql.Factories;
using Hangfire.Storage.SQLite;
using Microsoft.Extensions.Options;
using Peft.Storage;
using Peft.Web.Apis;
using Peft.Web.Jobs;
using Peft.Web.Security;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Peft.Web.Extensions;

/// <summary>
/// Fine-tuning jobs on Hangfire. Roles (<c>--role</c> on the command line, or <c>Role</c> in config): <c>web</c>
/// (default: API, dashboard and an in-process Hangfire server) or <c>worker</c> (Hangfire server only, no HTTP
/// endpoints; run it on the machines that train). The hidden <c>train-child</c> role is the training process itself.
/// </summary>
public static class JobsExtensions
{
    public const string WorkerRole = "worker";

    public static bool IsWorker(IConfiguration config) => string.Equals(config["role"], WorkerRole, StringComparison.OrdinalIgnoreCase);

    public static IHostApplicationBuilder AddJobs(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        var section = builder.Configuration.GetSection(JobsOptions.Section);
        services.AddOptions<JobsOptions>().Bind(section).Validate(o => o.LeaseTimeout > o.HeartbeatInterval * 2,
            "Jobs:LeaseTimeout must exceed two heartbeat intervals");
        // Every value is read from IOptions when the host starts, so late configuration sources (test hosts) apply.

        services.AddSingleton<LocalSupervisors>();
        services.AddSingleton<JobMetrics>();
        services.AddSingleton<JobNotifications>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<WorkersHealthCheck>();   // also read by the dashboard's worker panel
        services.AddHealthChecks().AddCheck<WorkersHealthCheck>(WorkersHealthCheck.Name, tags: ["ready"]);
        services.AddScoped<JobLeases>();
        services.AddScoped<JobRequestValidator>();
        services.AddScoped<JobService>();
        services.AddTransient<TrainingJobRunner>();
        services.AddSignalR();

        // The storage is this host's own singleton (Hangfire's default is the process-wide JobStorage.Current, which two
        // hosts in one process, as in the tests, would overwrite); Hangfire's registrations take it instead of the static.
        services.AddSingleton<JobStorage>(CreateStorage);
        services.AddHangfire((_, c) => c.SetDataCompatibilityLevel(CompatibilityLevel.Version_180).UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings().UseLogProvider(HostLogProvider.Instance));

        bool worker = IsWorker(builder.Configuration);
        // A worker maps no endpoints; a free loopback port keeps several workers on one machine from colliding.
        if (worker && string.IsNullOrEmpty(builder.Configuration["urls"])) builder.Configuration["urls"] = "http://127.0.0.1:0";
        services.AddHostedService<JobServers>();
        services.AddHostedService<JobRecovery>();
        if (!worker) services.AddHostedService<JobEventRelay>();
        return builder;
    }

    /// <summary>SQLite <c>hangfire.db</c> under Hub:DataDir, or PostgreSQL (ConnectionStrings:Hangfire, else the catalog's).</summary>
    private static JobStorage CreateStorage(IServiceProvider sp)
    {
        var settings = sp.GetRequiredService<IOptions<JobsOptions>>().Value;
        var config = sp.GetRequiredService<IConfiguration>();
        if (string.Equals(settings.Storage, "Postgres", StringComparison.OrdinalIgnoreCase))
        {
            string? connection = config.GetConnectionString("Hangfire") is { Length: > 0 } h ? h : config.GetConnectionString("Catalog");
            if (string.IsNullOrWhiteSpace(connection)) throw new InvalidOperationException("Jobs:Storage is Postgres; set ConnectionStrings:Hangfire (or ConnectionStrings:Catalog)");
            var options = new PostgreSqlStorageOptions { InvisibilityTimeout = settings.InvisibilityTimeout, QueuePollInterval = settings.QueuePollInterval };
            return new PostgreSqlStorage(new NpgsqlConnectionFactory(connection, options), options);
        }
        if (!string.Equals(settings.Storage, "Sqlite", StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException($"Jobs:Storage: expected Sqlite or Postgres, got '{settings.Storage}'");
        string dataDir = sp.GetRequiredService<IOptions<CatalogOptions>>().Value.DataDir;
        Directory.CreateDirectory(dataDir);
        return new SQLiteStorage(Path.Combine(dataDir, "hangfire.db"), new SQLiteStorageOptions
        {
            InvisibilityTimeout = settings.InvisibilityTimeout,
            QueuePollInterval = settings.QueuePollInterval,
        });
    }

    /// <summary>Jobs API (read: hub:read, changes: hub:train), the SignalR hub (hub:read) and the Hangfire dashboard (hub:admin); web role only.</summary>
    public static IEndpointRouteBuilder MapJobs(this IEndpointRouteBuilder app)
    {
        if (IsWorker(app.ServiceProvider.GetRequiredService<IConfiguration>())) return app;
        app.MapJobsApi();
        app.MapHub<JobsHub>("/hubs/jobs").RequireAuthorization(HubPolicies.Read);
        // The endpoint's policy decides; Hangfire's own filter (local requests only) is replaced by it.
        app.MapHangfireDashboard("/hangfire", new DashboardOptions { Authorization = [], AsyncAuthorization = [], DashboardTitle = "Peft jobs" })
            .RequireAuthorization(HubPolicies.Admin);
        return app;
    }
}
