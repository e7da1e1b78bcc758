namespace Peft.Web.Observability;

/// <summary>Metrics, traces and the scrape endpoint (section <c>Observability</c>).</summary>
public sealed class ObservabilityOptions
{
    public const string Section = "Observability";

    /// <summary>Prometheus text exposition of every metric (ASP.NET Core, Kestrel, HttpClient and every <c>Peft.*</c> meter).</summary>
    public string MetricsPath { get; set; } = "/metrics";

    /// <summary>
    /// Off (default): scraping needs the <c>admin</c> scope (an admin API key in the scraper's bearer_token). On: anyone
    /// who reaches the port may scrape; use it only where the port is private to the monitoring network.
    /// </summary>
    public bool AnonymousMetrics { get; set; }

    /// <summary>OTLP endpoint (e.g. <c>http://otel-collector:4317</c>) that receives traces and metrics; empty: traces are not exported.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary><c>service.name</c> of the exported telemetry (set per process in a multi-machine layout).</summary>
    public string ServiceName { get; set; } = "peft-hub";
}
