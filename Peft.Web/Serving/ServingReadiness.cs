using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Peft.Web.Serving;

/// <summary>
/// Loads the served base models at startup, off the request path (the engines are singletons built on first use,
/// and a model load takes seconds), and remembers how it went for the <c>model</c> health check.
/// </summary>
public sealed class ServingWarmup(IServiceProvider services, ILogger<ServingWarmup> logger) : BackgroundService
{
    private volatile string? _failure;

    public bool Loaded { get; private set; }
    public string? Failure => _failure;

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => Task.Run(() =>
    {
        try
        {
            var generation = services.GetRequiredService<InferenceService>();
            var encoders = services.GetRequiredService<EncoderModels>();
            Loaded = true;
            logger.LogInformation("Serving {Model} for generation and {Encoders} encoder model(s)", generation.ModelName, encoders.Hosts.Count);
        }
        catch (Exception e)
        {
            _failure = e.Message;
            logger.LogError(e, "The served base models failed to load");
        }
    }, stoppingToken);
}

/// <summary>Health check <c>model</c> (tag <c>ready</c>): healthy once every served base model is loaded.</summary>
public sealed class ModelHealthCheck(ServingWarmup warmup) : IHealthCheck
{
    public const string Name = "model";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(warmup.Failure is { } failure ? HealthCheckResult.Unhealthy($"base model failed to load: {failure}")
            : warmup.Loaded ? HealthCheckResult.Healthy("base models loaded")
            : HealthCheckResult.Unhealthy("base models still loading"));
}
