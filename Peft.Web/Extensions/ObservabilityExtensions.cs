using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Peft.Web.Observability;
using Peft.Web.Security;

namespace Peft.Web.Extensions;

/// <summary>
/// OpenTelemetry traces and metrics (ASP.NET Core, EF Core, HttpClient and every meter named <c>Peft.*</c>: hub, serving,
/// jobs), a Prometheus scrape endpoint, OTLP export when configured. Structured logs need no code: set
/// <c>Logging:Console:FormatterName</c> to <c>json</c>.
/// </summary>
public static class ObservabilityExtensions
{
    public static IHostApplicationBuilder AddObservability(this IHostApplicationBuilder builder)
    {
        var section = builder.Configuration.GetSection(ObservabilityOptions.Section);
        builder.Services.AddOptions<ObservabilityOptions>().Bind(section);
        var options = section.Get<ObservabilityOptions>() ?? new ObservabilityOptions();
        builder.Services.AddMetrics();
        builder.Services.AddSingleton<HubMetrics>();

        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(options.ServiceName))
            .WithMetrics(m => m
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddMeter("Peft.*")
                .AddPrometheusExporter())
            .WithTracing(t => t
                .AddAspNetCoreInstrumentation(o => o.Filter = ctx => !ctx.Request.Path.StartsWithSegments(options.MetricsPath))
                .AddEntityFrameworkCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddSource("Peft.*"));
        if (!string.IsNullOrWhiteSpace(options.OtlpEndpoint))
            otel.UseOtlpExporter(OpenTelemetry.Exporter.OtlpExportProtocol.Grpc, new Uri(options.OtlpEndpoint));
        return builder;
    }

    /// <summary>The scrape endpoint: admin scope unless <c>Observability:AnonymousMetrics</c>.</summary>
    public static IEndpointRouteBuilder MapObservability(this IEndpointRouteBuilder app)
    {
        var options = app.ServiceProvider.GetRequiredService<Microsoft.Extensions.Options.IOptions<ObservabilityOptions>>().Value;
        var scrape = app.MapPrometheusScrapingEndpoint(options.MetricsPath);
        if (options.AnonymousMetrics) scrape.AllowAnonymous();
        else scrape.RequireAuthorization(HubPolicies.Admin);
        return app;
    }
}
