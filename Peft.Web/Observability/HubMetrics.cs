using System.Diagnostics.Metrics;

namespace Peft.Web.Observability;

/// <summary>The hub's own instruments on meter <c>Peft.Hub</c> (exported with every other <c>Peft.*</c> meter).</summary>
public sealed class HubMetrics
{
    public const string MeterName = "Peft.Hub";
    private readonly Counter<long> _catalogWrites;

    public HubMetrics(IMeterFactory factory)
    {
        var meter = factory.Create(MeterName);
        _catalogWrites = meter.CreateCounter<long>("peft.hub.catalog.writes", unit: "{request}",
            description: "Catalog writes through REST (uploads, registrations, alias moves, deletes) by method and status code");
    }

    public void CatalogWrite(string method, int statusCode) =>
        _catalogWrites.Add(1, new KeyValuePair<string, object?>("http.request.method", method),
            new KeyValuePair<string, object?>("http.response.status_code", statusCode));
}
