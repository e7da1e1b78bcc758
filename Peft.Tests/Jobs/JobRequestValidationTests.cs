using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Peft.Storage;
using Peft.Tests.Hub;
using Peft.Web.Security;

namespace Peft.Tests.Jobs;

/// <summary>Bad job requests are refused with problem details before anything is queued (no row, no Hangfire job).</summary>
public class JobRequestValidationTests
{
    private static JsonObject With(Action<JsonObject> edit)
    {
        var r = JobsTestHub.Request("bad-adapter");
        edit(r);
        return r;
    }

    public static TheoryData<string, int, string> Cases() => new()
    {
        { "missing base_model", 400, "base_model" },
        { "missing dataset", 400, "dataset" },
        { "missing adapter_name", 400, "adapter_name" },
        { "bad adapter_name", 400, "adapter name" },
        { "unknown key", 400, "unknown" },
        { "mistyped rank", 400, "expected an integer" },
        { "server key out", 400, "set by the hub" },
        { "unknown queue", 400, "queue" },
        { "bad priority", 400, "priority" },
        { "unknown base model", 404, "not found" },
        { "unknown dataset", 404, "not found" },
        { "rank zero", 422, "r:" },
        { "negative rank", 422, "r:" },
        { "unknown method", 422, "unknown method" },
        { "full fine-tune", 422, "adapter method" },
        { "unknown target module", 422, "matches no module" },
        { "dropout one", 422, "lora_dropout" },
        { "learning rate zero", 422, "" },
        { "batch size zero", 422, "" },
        { "bad validation split", 422, "validation_split" },
        { "classification data for a causal LM", 422, "cannot train" },
        { "unknown format", 422, "format" },
        { "bad scheduler", 422, "scheduler" },
        { "submitter given", 400, "submitted_by" },
        { "target_r above init_r", 422, "target_r" },
        { "unknown parent version", 404, "jobs-none" },
    };

    private static object Body(string kind) => kind switch
    {
        "missing base_model" => With(r => r.Remove("base_model")),
        "missing dataset" => With(r => r.Remove("dataset")),
        "missing adapter_name" => With(r => r.Remove("adapter_name")),
        "bad adapter_name" => With(r => r["adapter_name"] = "../etc"),
        "unknown key" => With(r => r["lora_alpah"] = 8),
        "mistyped rank" => With(r => r["r"] = "eight"),
        "server key out" => With(r => r["out"] = "/tmp/elsewhere"),
        "unknown queue" => With(r => r["queue"] = "tpu"),
        "bad priority" => With(r => r["priority"] = "urgent"),
        "unknown base model" => With(r => r["base_model"] = "no-such-model"),
        "unknown dataset" => With(r => r["dataset"] = "no-such-data"),
        "rank zero" => With(r => r["r"] = 0),
        "negative rank" => With(r => r["r"] = -4),
        "unknown method" => With(r => r["method"] = "lorax"),
        "full fine-tune" => With(r => r["method"] = "full"),
        "unknown target module" => With(r => r["target_modules"] = new JsonArray("q_proj", "qkv_proj")),
        "dropout one" => With(r => r["lora_dropout"] = 1.0),
        "learning rate zero" => With(r => r["lr"] = 0),
        "batch size zero" => With(r => r["batch_size"] = 0),
        "bad validation split" => With(r => r["validation_split"] = 1.5),
        "classification data for a causal LM" => With(r => r["dataset"] = "labelled"),
        "unknown format" => With(r => r["format"] = "parquet"),
        "bad scheduler" => With(r => r["scheduler"] = "exponential"),
        "unknown parent version" => With(r => r["parent"] = "jobs-none@1"),
        "submitter given" => With(r => r["submitted_by"] = "someone-else"),
        "target_r above init_r" => With(r => { r["method"] = "adalora"; r["init_r"] = 4; r["target_r"] = 8; }),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    [Fact]
    public Task EveryKindOfBadRequestIsRefusedAndNothingIsQueued() => BadRequestsAsync(DatabaseProvider.Sqlite);

    [PostgresFact]
    public Task EveryKindOfBadRequestIsRefusedAndNothingIsQueuedOnPostgres() => BadRequestsAsync(DatabaseProvider.Postgres);

    private static async Task BadRequestsAsync(DatabaseProvider provider)
    {
        using var hub = new JobsTestHub(provider: provider);
        await hub.UploadTextDatasetAsync();
        await hub.UploadAsync("labelled", "labelled.jsonl", "{\"text\":\"good\",\"label\":\"pos\"}\n{\"text\":\"bad\",\"label\":\"neg\"}\n");

        var failures = new List<string>();
        foreach (var (kind, status, detail) in Cases().Select(c => ((string)c[0], (int)c[1], (string)c[2])))
        {
            var response = await hub.Client.PostAsJsonAsync("/api/jobs", Body(kind));
            string text = await response.Content.ReadAsStringAsync();
            if ((int)response.StatusCode != status || response.Content.Headers.ContentType?.MediaType != "application/problem+json"
                || !text.Contains(detail, StringComparison.OrdinalIgnoreCase))
                failures.Add($"{kind}: {(int)response.StatusCode} {text}");
        }
        // Not JSON at all, and JSON that is not an object.
        var notJson = await hub.Client.PostAsync("/api/jobs", new StringContent("{r: 8", Encoding.UTF8, "application/json"));
        if (notJson.StatusCode != HttpStatusCode.BadRequest) failures.Add($"malformed JSON: {(int)notJson.StatusCode}");
        var array = await hub.Client.PostAsync("/api/jobs", new StringContent("[1,2]", Encoding.UTF8, "application/json"));
        if (array.StatusCode != HttpStatusCode.BadRequest) failures.Add($"JSON array: {(int)array.StatusCode}");

        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(Cases().Count() + 2 >= 15);
        Assert.Equal(0, await hub.DbAsync(db => db.TrainingJobs.CountAsync()));
        var hangfire = hub.Factory.Services.GetRequiredService<Hangfire.JobStorage>().GetMonitoringApi().GetStatistics();
        Assert.Equal(0, hangfire.Enqueued + hangfire.Processing + hangfire.Scheduled + hangfire.Succeeded + hangfire.Failed);
        var page = (await hub.Client.GetFromJsonAsync<JsonObject>("/api/jobs"))!;
        Assert.Equal(0, (int)page["total"]!);
    }

    [Fact]
    public async Task UnknownJobsAre404AndFinishedOnesCannotBeCancelled()
    {
        using var hub = new JobsTestHub();
        Assert.Equal(HttpStatusCode.NotFound, (await hub.Client.GetAsync("/api/jobs/999")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await hub.Client.DeleteAsync("/api/jobs/999")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await hub.Client.PostAsync("/api/jobs/999/resume", null)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await hub.Client.GetAsync("/api/jobs?state=done")).StatusCode);
    }

    [Fact]
    public async Task JobEndpointsTheHubAndTheDashboardNeedTheirRoles()
    {
        using var hub = new JobsTestHub();
        await hub.Factory.CreateUserAsync("vera", HubRoles.Viewer);
        await hub.Factory.CreateUserAsync("tom", HubRoles.Trainer);
        // Each key has every scope its owner's role allows (viewer: read+infer, trainer: +train).
        using var viewer = hub.Factory.ClientWithKey(await hub.Factory.CreateKeyAsync("vera", HubRoles.ScopesOf(HubRoles.Viewer).ToList()));
        using var trainer = hub.Factory.ClientWithKey(await hub.Factory.CreateKeyAsync("tom", HubRoles.ScopesOf(HubRoles.Trainer).ToList()));
        using var anonymous = hub.Factory.AnonymousClient();
        var unknownBase = With(r => r["base_model"] = "no-such-model");

        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/jobs")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/api/jobs", unknownBase)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await viewer.GetAsync("/api/jobs")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await viewer.GetAsync("/api/jobs/1/events")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await viewer.PostAsJsonAsync("/api/jobs", unknownBase)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await viewer.DeleteAsync("/api/jobs/1")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await viewer.PostAsync("/api/jobs/1/resume", null)).StatusCode);
        // A trainer gets past authorization to validation (the base model is unknown).
        Assert.Equal(HttpStatusCode.NotFound, (await trainer.PostAsJsonAsync("/api/jobs", unknownBase)).StatusCode);

        // SignalR: negotiating needs hub:read.
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsync("/hubs/jobs/negotiate?negotiateVersion=1", null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await viewer.PostAsync("/hubs/jobs/negotiate?negotiateVersion=1", null)).StatusCode);

        // The Hangfire dashboard is for admins only.
        Assert.Equal(HttpStatusCode.Forbidden, (await trainer.GetAsync("/hangfire")).StatusCode);
        var admin = await hub.Client.GetAsync("/hangfire");
        Assert.Equal(HttpStatusCode.OK, admin.StatusCode);
        Assert.Contains("Peft jobs", await admin.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task TheWorkersHealthCheckIsReadyOnlyWithALiveCpuServer()
    {
        static async Task<HealthStatus> WorkersAsync(HubFactory f)
        {
            var report = await f.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(r => r.Tags.Contains("ready") && r.Name == "workers");
            return Assert.Single(report.Entries).Value.Status;
        }
        using var hub = new JobsTestHub();
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (await WorkersAsync(hub.Factory) != HealthStatus.Healthy && DateTime.UtcNow < until) await Task.Delay(250);
        Assert.Equal(HealthStatus.Healthy, await WorkersAsync(hub.Factory));

        using var noServer = new HubFactory(); // Jobs:RunServer is off in plain hub tests, and nothing else shares its storage
        _ = noServer.Server;
        Assert.Equal(HealthStatus.Unhealthy, await WorkersAsync(noServer));
    }
}
