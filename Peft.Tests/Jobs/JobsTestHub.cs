using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Peft.Storage;
using Peft.Storage.Infrastructure;
using Peft.Storage.Model;
using Peft.Tests.Data;
using Peft.Tests.Hub;
using Peft.Tests.Support;

namespace Peft.Tests.Jobs;

/// <summary>
/// The real hub with real Hangfire on a SQLite file under a fresh data dir, training in real child processes on the
/// demo model. Leases and polling are shortened to seconds so crash recovery shows up within a test.
/// </summary>
public sealed class JobsTestHub : IDisposable
{
    /// <summary>Training rows start here; held-out rows follow them.</summary>

    private readonly TempDir _corpora = new();
    public HubFactory Factory { get; }
    public HttpClient Client { get; }

    /// <summary>
    /// On <see cref="DatabaseProvider.Postgres"/> the catalog and Hangfire's storage share a fresh PostgreSQL database.
    /// </summary>
    /// <param name="dataDir">A data dir to reuse (a second host over the first one's catalog and queue); fresh when null.</param>
    public JobsTestHub(Dictionary<string, string?>? settings = null, DatabaseProvider provider = DatabaseProvider.Sqlite, string? dataDir = null)
    {
        Factory = new HubFactory(dataDir, provider) { Seed = true };
        foreach (var (k, v) in FastJobSettings(_corpora.Path)) Factory.Settings[k] = v;
        if (provider == DatabaseProvider.Postgres) Factory.Settings["Jobs:Storage"] = "Postgres";
        foreach (var (k, v) in settings ?? []) Factory.Settings[k] = v;
        Client = Factory.CreateClient();
    }

    /// <summary>
    /// A Hangfire server in the host, the demo model, and leases and polling shortened to seconds (the browser journey
    /// test uses the same). <paramref name="corporaDir"/> receives uploaded datasets.
    /// </summary>
    public static Dictionary<string, string?> FastJobSettings(string corporaDir) => new()
    {
        ["Hub:ModelsDir"] = RepoFiles.Path("models"),
        ["Hub:CorporaDir"] = corporaDir,
        ["Jobs:RunServer"] = "true",
        // Long enough that a heartbeat delayed by a loaded machine is not taken for a dead owner; a killed
        // training child is resumed by its live supervisor at once, without waiting for it.
        ["Jobs:LeaseTimeout"] = "00:01:00",
        ["Jobs:HeartbeatInterval"] = "00:00:01",
        ["Jobs:RecoveryInterval"] = "00:00:01",
        ["Jobs:QueuePollInterval"] = "00:00:01",
        ["Jobs:MaxCrashRetries"] = "10",
        ["Jobs:StopGrace"] = "00:00:10",
    };

    /// <summary>Rows of the bundled Austen corpus past its front matter: enough prose for a few packed 32-token blocks.</summary>
    public async Task UploadTextDatasetAsync(string name = "ledger-small", int rows = 40) =>
        await UploadAsync(name, "small.jsonl", string.Join("\n", LedgerRows(1, rows)) + "\n");

    /// <summary>
    /// Short ledger lines from a fixed grammar: text the demo model never saw (it was pretrained on the bundled Austen
    /// and address corpora, so a few steps on those barely move held-out loss), which ten LoRA steps measurably learn.
    /// Another seed gives held-out rows of the same kind.
    /// </summary>
    public static IEnumerable<string> LedgerRows(int seed, int count)
    {
        var random = new Random(seed);
        string[] items = ["apples", "pears", "barrels of flour", "casks of oil", "bolts of cloth", "crates of tea"];
        string[] places = ["Bristol", "Lisbon", "Boston", "Calcutta", "Canton", "Hull"];
        string[] months = ["January", "March", "May", "July", "September", "November"];
        for (int i = 0; i < count; i++)
        {
            string text = $"Ledger entry: received {random.Next(2, 10)} {items[random.Next(items.Length)]} from "
                + $"{places[random.Next(places.Length)]} in {months[random.Next(months.Length)]}, paid in full.";
            yield return System.Text.Json.JsonSerializer.Serialize(new { text });
        }
    }

    public async Task UploadAsync(string name, string fileName, string content)
    {
        var form = new MultipartFormDataContent { { new StringContent(name), "name" } };
        var file = new ByteArrayContent(System.Text.Encoding.UTF8.GetBytes(content));
        file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(file, "file", fileName);
        var response = await Client.PostAsync("/api/datasets", form);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>A small LoRA run: every step checkpointed, dropout off, so a resumed run must equal an uninterrupted one.</summary>
    public static JsonObject Request(string adapter, int maxSteps = 6) => new()
    {
        ["base_model"] = "peft-demo",
        ["dataset"] = "ledger-small",
        ["adapter_name"] = adapter,
        ["method"] = "lora",
        ["r"] = 4,
        ["lora_alpha"] = 8,
        ["lora_dropout"] = 0,
        ["target_modules"] = new JsonArray("q_proj", "v_proj"),
        ["max_steps"] = maxSteps,
        ["batch_size"] = 2,
        ["max_length"] = 32,
        ["lr"] = 0.005,
        ["save_every"] = 1,
        ["validation_split"] = 0.2,
        ["seed"] = 7,
    };

    public async Task<long> SubmitAsync(JsonObject request)
    {
        var response = await Client.PostAsJsonAsync("/api/jobs", request);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (long)(await response.Content.ReadFromJsonAsync<JsonObject>())!["id"]!;
    }

    public async Task<JsonObject> GetAsync(long id) => (await Client.GetFromJsonAsync<JsonObject>($"/api/jobs/{id}"))!;

    public async Task<JsonObject> WaitForAsync(long id, Func<JsonObject, bool> done, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (true)
        {
            var job = await GetAsync(id);
            if (done(job)) return job;
            if (DateTime.UtcNow > until) Assert.Fail($"job {id} did not reach the expected state in {timeout}: {job.ToJsonString()}");
            await Task.Delay(200);
        }
    }

    public Task<JsonObject> WaitForStateAsync(long id, string state, TimeSpan timeout) =>
        WaitForAsync(id, j => (string)j["state"]! == state || (state != "failed" && (string)j["state"]! == "failed"), timeout);

    public async Task<T> DbAsync<T>(Func<CatalogDbContext, Task<T>> query)
    {
        await using var scope = Factory.Services.CreateAsyncScope();
        return await query(scope.ServiceProvider.GetRequiredService<CatalogDbContext>());
    }

    public Task<List<JobEvent>> EventsAsync(long id) => DbAsync(db => db.JobEvents.AsNoTracking().Where(e => e.JobId == id).OrderBy(e => e.Seq).ToListAsync());

    public Task<List<JobLease>> LeasesAsync(long id) => DbAsync(db => db.JobLeases.AsNoTracking().Where(l => l.JobId == id).OrderBy(l => l.Token).ToListAsync());

    /// <summary>Loss of the final optimizer step (the last attempt's step event for it).</summary>
    public async Task<double> FinalLossAsync(long id, int maxSteps) =>
        (await EventsAsync(id)).Last(e => e.Type == "step" && e.Step == maxSteps).Loss!.Value;

    /// <summary>Attempts never overlap: each lease was taken after the previous one was released (or went stale).</summary>
    public static void AssertNoOverlap(List<JobLease> leases)
    {
        for (int i = 1; i < leases.Count; i++)
        {
            var previousEnd = leases[i - 1].ReleasedAt ?? leases[i - 1].LastHeartbeatAt;
            Assert.True(leases[i].AcquiredAt >= previousEnd,
                $"lease {leases[i].Token} taken at {leases[i].AcquiredAt:O} while lease {leases[i - 1].Token} lived until {previousEnd:O}");
        }
    }

    public void Dispose()
    {
        Client.Dispose();
        Factory.Dispose();
        _corpora.Dispose();
    }
}
