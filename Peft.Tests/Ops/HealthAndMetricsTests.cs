using System.Net;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Peft.Tests.Hub;

namespace Peft.Tests.Ops;

/// <summary>Liveness, readiness (database and blob store) and the Prometheus scrape endpoint on the real host.</summary>
public sealed class HealthAndMetricsTests
{
    private static async Task<(HttpStatusCode Status, JsonElement Body)> HealthAsync(HttpClient client, string path)
    {
        var response = await client.GetAsync(path);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement);
    }

    private static Dictionary<string, string> Checks(JsonElement body) =>
        body.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!, c => c.GetProperty("status").GetString()!);

    /// <summary>A hub that can be ready: it runs a Hangfire server (the `workers` check) and loads its model at startup.</summary>
    private static HubFactory ReadyHub() => new() { Settings = { ["Jobs:RunServer"] = "true" } };

    /// <summary>Readiness once the model has loaded (the `model` check reports loading until then).</summary>
    private static async Task WaitReadyAsync(HttpClient client)
    {
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        HttpStatusCode status;
        while ((status = (await client.GetAsync("/health/ready")).StatusCode) != HttpStatusCode.OK && DateTime.UtcNow < until) await Task.Delay(250);
        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Fact]
    public async Task Live_and_ready_answer_anonymously_and_list_each_check()
    {
        using var hub = ReadyHub();
        using var client = hub.AnonymousClient();
        var (liveStatus, live) = await HealthAsync(client, "/health/live");
        Assert.Equal(HttpStatusCode.OK, liveStatus);
        Assert.Equal("Healthy", live.GetProperty("status").GetString());
        Assert.Empty(Checks(live));     // liveness runs no dependency check

        await WaitReadyAsync(client);
        var (readyStatus, ready) = await HealthAsync(client, "/health/ready");
        Assert.Equal(HttpStatusCode.OK, readyStatus);
        var checks = Checks(ready);
        foreach (var name in new[] { "database", "blob_store", "model", "workers" }) Assert.Equal("Healthy", checks[name]);
    }

    [Fact]
    public async Task Ready_is_503_when_the_database_is_unreadable_while_live_stays_200()
    {
        using var hub = ReadyHub();
        using var client = hub.AnonymousClient();
        await WaitReadyAsync(client);

        // The catalog file is overwritten with garbage: what a lost volume or a corrupted disk looks like to SQLite.
        SqliteConnection.ClearAllPools();
        foreach (var f in Directory.GetFiles(hub.DataDir, "catalog.db*")) File.Delete(f);
        await File.WriteAllBytesAsync(Path.Combine(hub.DataDir, "catalog.db"), Enumerable.Repeat((byte)0x5a, 8192).ToArray());

        var (status, body) = await HealthAsync(client, "/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Equal("Unhealthy", Checks(body)["database"]);
        Assert.Equal("Healthy", Checks(body)["blob_store"]);
        var detail = body.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "database")
            .GetProperty("description").GetString();
        Assert.Contains("catalog database", detail);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task Ready_is_503_when_the_blob_folder_cannot_be_written()
    {
        using var hub = ReadyHub();
        using var client = hub.AnonymousClient();
        await WaitReadyAsync(client);

        // A file where the blob folder should be (permissions do not stop root, which CI runs as).
        string blobs = Path.Combine(hub.DataDir, "blobs");
        Directory.Delete(blobs, recursive: true);
        await File.WriteAllTextAsync(blobs, "not a folder");

        var (status, body) = await HealthAsync(client, "/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Equal("Unhealthy", Checks(body)["blob_store"]);
        Assert.Equal("Healthy", Checks(body)["database"]);
    }

    [Fact]
    public async Task Metrics_scrape_shows_aspnetcore_and_peft_meters_and_needs_admin_by_default()
    {
        using var hub = new HubFactory();
        using var admin = hub.CreateClient();
        await hub.RegisterGoldenBaseAsync(admin, "llama_base");                  // a catalog write: Peft.Hub counts it
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/api/base-models")).StatusCode);

        using var anonymous = hub.AnonymousClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/metrics")).StatusCode);
        using var reader = hub.ClientWithKey(await hub.CreateKeyAsync("admin", [Peft.Web.Security.HubScopes.Read]));
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.GetAsync("/metrics")).StatusCode);

        var scrape = await admin.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, scrape.StatusCode);
        string text = await scrape.Content.ReadAsStringAsync();
        Assert.Contains("http_server_request_duration_seconds_bucket{", text);           // ASP.NET Core hosting meter
        Assert.Contains("http_route=\"/api/base-models/\"", text);
        // Meter listeners see same-named meters of every host in the process (parallel tests): one series or several
        // with these labels, at least one of which counts this test's write.
        var writes = text.Split('\n').Where(l => l.StartsWith("peft_hub_catalog_writes_total{", StringComparison.Ordinal)
                                                  && l.Contains("http_response_status_code=\"201\"")).ToList();
        Assert.NotEmpty(writes);
        Assert.All(writes, w => Assert.Contains("http_request_method=\"POST\"", w));
        double Value(string line) => double.Parse(line[(line.LastIndexOf('}') + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(writes.Any(w => Value(w) >= 1), string.Join("\n", writes));
    }

    [Fact]
    public async Task Metrics_can_be_opened_to_anonymous_scrapers_by_configuration()
    {
        using var hub = new HubFactory { Settings = { ["Observability:AnonymousMetrics"] = "true" } };
        using var anonymous = hub.AnonymousClient();
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health/live")).StatusCode);
        var scrape = await anonymous.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, scrape.StatusCode);
        Assert.Contains("# TYPE", await scrape.Content.ReadAsStringAsync());
    }
}
