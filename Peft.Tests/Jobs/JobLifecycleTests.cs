using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.EntityFrameworkCore;
using Peft.Storage.Model;
using Peft.Tests.Data;
using Peft.Tests.Support;

namespace Peft.Tests.Jobs;

/// <summary>
/// Real Hangfire (SQLite file, invisibility timeout 2 s, two workers) and real training processes on the demo model:
/// an uninterrupted run, a run whose training process is killed with SIGKILL five times, and a run cancelled and
/// resumed must all succeed with the same final loss, one attempt at a time, one adapter version each.
/// </summary>
public class JobLifecycleTests
{
    private const int Steps = 10;
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(10);

    [Fact]
    public async Task RunsKillsCancelsAndResumesToTheSameResultExactlyOnceEach()
    {
        using var hub = new JobsTestHub(new() { ["Jobs:InvisibilityTimeout"] = "00:00:02", ["Jobs:Queues:cpu"] = "2" });
        await hub.UploadTextDatasetAsync();
        using var meter = new JobMeterRecorder(hub.Factory.Services.GetRequiredService<IMeterFactory>());

        // SignalR: subscribe before submitting, collect what the hub pushes.
        var server = hub.Factory.Server;
        var pushed = new List<JobEventMessageDto>();
        await using var signalr = new HubConnectionBuilder()
            .WithUrl(new Uri(hub.Client.BaseAddress!, "/hubs/jobs"), o =>
            {
                o.HttpMessageHandlerFactory = _ => server.CreateHandler();
                o.Transports = HttpTransportType.LongPolling; // TestServer has no WebSockets
                o.AccessTokenProvider = () => Task.FromResult<string?>(hub.Factory.AdminKey);
            })
            .Build();
        signalr.On<JobEventMessageDto>("event", m => { lock (pushed) pushed.Add(m); });
        await signalr.StartAsync();

        // 1. Uninterrupted; longer than the invisibility timeout, so Hangfire delivers it again while it runs.
        long a = await hub.SubmitAsync(JobsTestHub.Request("jobs-a", Steps));
        await signalr.InvokeAsync("Subscribe", a);
        var jobA = await hub.WaitForStateAsync(a, "succeeded", Long);
        Assert.Equal("succeeded", (string)jobA["state"]!);
        Assert.Equal("jobs-a@1", (string)jobA["resultVersion"]!);
        Assert.Equal("admin", (string)jobA["submittedBy"]!);
        var leasesA = await hub.LeasesAsync(a);
        Assert.Single(leasesA); // the redelivery found a live owner and backed off
        Assert.Equal(1, (int)jobA["attempt"]!);
        double lossA = await hub.FinalLossAsync(a, Steps);

        // Lineage and the version itself.
        var version = (await hub.Client.GetFromJsonAsync<JsonObject>("/api/adapters/jobs-a/versions/1"))!;
        Assert.Equal("ready", (string)version["state"]!);
        Assert.Equal(a, (long)version["sourceJobId"]!);
        Assert.Equal("ledger-small", (string)version["sourceDataset"]!);
        var dataset = (await hub.Client.GetFromJsonAsync<JsonObject>("/api/datasets/ledger-small"))!;
        Assert.Equal((string)dataset["sha256"]!, (string)version["sourceDatasetSha256"]!);
        Assert.Equal(4, (int)version["trainingConfig"]!["r"]!);
        Assert.True(version["metrics"]!.AsObject().ContainsKey("eval_loss"));

        // The adapter loads and lowers held-out loss against the base.
        using var adapterDir = new TempDir();
        foreach (var f in new[] { "adapter_config.json", "adapter_model.safetensors" })
            await File.WriteAllBytesAsync(Path.Combine(adapterDir.Path, f),
                await hub.Client.GetByteArrayAsync($"/api/adapters/jobs-a/versions/1/download?file={f}"));
        string heldOut = Path.Combine(adapterDir.Path, "held-out.jsonl");
        await File.WriteAllLinesAsync(heldOut, JobsTestHub.LedgerRows(2, 20));
        double baseLoss = EvalLoss(heldOut, null), tunedLoss = EvalLoss(heldOut, adapterDir.Path);
        Assert.True(tunedLoss < baseLoss, $"held-out loss with the adapter {tunedLoss} is not below the base's {baseLoss}");

        // SSE: resume after event 3, stream ends with the job's last event.
        using (var request = new HttpRequestMessage(HttpMethod.Get, $"/api/jobs/{a}/events"))
        {
            request.Headers.Add("Last-Event-ID", "3");
            var sse = await hub.Client.SendAsync(request);
            Assert.Equal("text/event-stream", sse.Content.Headers.ContentType?.MediaType);
            var ids = (await sse.Content.ReadAsStringAsync()).Split('\n').Where(l => l.StartsWith("id: ")).Select(l => long.Parse(l[4..])).ToList();
            var all = await hub.EventsAsync(a);
            Assert.Equal(all.Where(e => e.Seq > 3).Select(e => e.Seq), ids);
        }
        await WaitUntil(() => { lock (pushed) return pushed.Any(m => m.JobId == a && m.Json.Contains("\"succeeded\"")); }, TimeSpan.FromSeconds(10));
        lock (pushed) Assert.Contains(pushed, m => m.JobId == a && m.Type == "step");

        // 2. SIGKILL the training process at random points five times: it resumes from its checkpoint each time.
        long b = await hub.SubmitAsync(JobsTestHub.Request("jobs-b", Steps));
        var random = new Random(2024);
        long lastAttemptSeq = 0;
        for (int kill = 0; kill < 5; kill++)
        {
            var (attemptSeq, pid) = await NextAttemptWithProgressAsync(hub, b, lastAttemptSeq);
            await Task.Delay(random.Next(0, 100));
            try { Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { }
            lastAttemptSeq = attemptSeq;
        }
        var jobB = await hub.WaitForStateAsync(b, "succeeded", Long);
        Assert.Equal("succeeded", (string)jobB["state"]!);
        var leasesB = await hub.LeasesAsync(b);
        Assert.True(leasesB.Count >= 6, $"{leasesB.Count} attempts for 5 kills");
        Assert.Equal(5, leasesB.Count(l => l.Outcome == "crashed"));
        JobsTestHub.AssertNoOverlap(leasesB);
        Assert.Equal(lossA, await hub.FinalLossAsync(b, Steps), 6);
        var versionsB = await hub.DbAsync(db => db.AdapterVersions.Where(v => v.SourceJobId == b).ToListAsync());
        Assert.Equal(VersionState.Ready, Assert.Single(versionsB).State);

        // 3. Cancel while running: stops within 5 s with a checkpoint; resuming finishes with the same loss.
        long c = await hub.SubmitAsync(JobsTestHub.Request("jobs-c", Steps));
        await hub.WaitForAsync(c, j => (int)j["step"]! >= 2, Long);
        var clock = Stopwatch.StartNew();
        var cancel = await hub.Client.DeleteAsync($"/api/jobs/{c}");
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        var cancelled = await hub.WaitForStateAsync(c, "cancelled", TimeSpan.FromSeconds(30));
        clock.Stop();
        Assert.Equal("cancelled", (string)cancelled["state"]!);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"cancel took {clock.Elapsed.TotalSeconds:F1} s");
        Assert.StartsWith("checkpoint-", (string)cancelled["lastCheckpoint"]!);
        Assert.Equal(HttpStatusCode.Conflict, (await hub.Client.DeleteAsync($"/api/jobs/{c}")).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await hub.Client.PostAsync($"/api/jobs/{c}/resume", null)).StatusCode);
        var resumed = await hub.WaitForStateAsync(c, "succeeded", Long);
        Assert.Equal("succeeded", (string)resumed["state"]!);
        Assert.Equal(lossA, await hub.FinalLossAsync(c, Steps), 6);
        JobsTestHub.AssertNoOverlap(await hub.LeasesAsync(c));
        Assert.Contains(await hub.EventsAsync(c), e => e.Type == "start" && e.Json.Contains("resumed from"));

        // Filters and paging over the three jobs.
        var page = (await hub.Client.GetFromJsonAsync<JsonObject>("/api/jobs?state=succeeded&page_size=2"))!;
        Assert.Equal(3, (int)page["total"]!);
        Assert.Equal(2, page["items"]!.AsArray().Count);
        Assert.Equal(3, (int)(await hub.Client.GetFromJsonAsync<JsonObject>("/api/jobs?state=succeeded&queue=cpu"))!["total"]!);
        Assert.Equal(0, (int)(await hub.Client.GetFromJsonAsync<JsonObject>("/api/jobs?queue=gpu"))!["total"]!);
        var metrics = (await hub.Client.GetFromJsonAsync<JsonObject>($"/api/jobs/{a}/metrics"))!;
        Assert.Equal(Steps, metrics["train"]!.AsArray().Count);

        // 4. A clone of A that continues A's version: version 2 of the same adapter, its lineage naming version 1.
        var cloned = await hub.Client.PostAsJsonAsync($"/api/jobs/{a}/clone", new JsonObject { ["parent"] = "jobs-a@1", ["max_steps"] = 2 });
        Assert.Equal(HttpStatusCode.Created, cloned.StatusCode);
        long d = (long)(await cloned.Content.ReadFromJsonAsync<JsonObject>())!["id"]!;
        var jobD = await hub.WaitForStateAsync(d, "succeeded", Long);
        Assert.Equal("jobs-a@2", (string)jobD["resultVersion"]!);
        Assert.Equal(a, (long)jobD["clonedFrom"]!);
        var continued = (await hub.Client.GetFromJsonAsync<JsonObject>("/api/adapters/jobs-a/versions/2"))!;
        Assert.Equal(1, (int)continued["parentVersion"]!);
        Assert.Equal(d, (long)continued["sourceJobId"]!);

        // The Peft.Jobs meter of this host counted what happened.
        Assert.Equal(4, meter.Total("peft.jobs.submitted"));
        Assert.Equal(4, meter.Total("peft.jobs.succeeded"));
        Assert.Equal(1, meter.Total("peft.jobs.cancelled"));
        Assert.Equal(0, meter.Total("peft.jobs.failed"));
        Assert.True(meter.Count("peft.jobs.step.duration") >= 3 * (Steps - 1) - 6 * 2, $"{meter.Count("peft.jobs.step.duration")} step durations");
        Assert.Equal(0, hub.Factory.Services.GetRequiredService<Peft.Web.Jobs.JobMetrics>().RunningCount);
    }

    /// <summary>Waits for a training process newer than <paramref name="afterSeq"/> to report a step; its attempt event and pid.</summary>
    private static async Task<(long Seq, int Pid)> NextAttemptWithProgressAsync(JobsTestHub hub, long jobId, long afterSeq)
    {
        var until = DateTime.UtcNow + Long;
        while (DateTime.UtcNow < until)
        {
            var events = await hub.EventsAsync(jobId);
            var attempt = events.LastOrDefault(e => e.Type == "attempt" && e.Seq > afterSeq);
            if (attempt is not null && events.Any(e => e.Type == "step" && e.Seq > attempt.Seq))
                return (attempt.Seq, (int)JsonNode.Parse(attempt.Json)!["pid"]!);
            Assert.DoesNotContain(events, e => e.Type == "state" && e.Json.Contains("succeeded"));
            await Task.Delay(100);
        }
        throw new TimeoutException($"job {jobId}: no new attempt made progress");
    }

    private static async Task WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (!condition() && DateTime.UtcNow < until) await Task.Delay(100);
        Assert.True(condition());
    }

    private static double EvalLoss(string data, string? adapter)
    {
        var output = new StringWriter();
        string[] args = ["eval", RepoFiles.Path("models", "peft-demo"), "--data", data, "--block-size", "32", .. adapter is null ? Array.Empty<string>() : ["--adapter", adapter]];
        int code = Peft.Cli.CliApp.Run(args, output, Console.Error);
        Assert.Equal(0, code);
        return (double)JsonNode.Parse(output.ToString().Trim().Split('\n')[^1])!["eval_loss"]!;
    }

    public sealed record JobEventMessageDto(long JobId, long Seq, string Type, string Json);
}
