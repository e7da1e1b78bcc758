using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;

namespace Peft.Tests.Jobs;

/// <summary>
/// A cancel wins over however the training process ends. Here the trainer is a shell whose <c>sleep</c> dies of the
/// SIGTERM (exit 143, as a .NET trainer does when the signal lands before its handler is installed): the job must end
/// cancelled at once, not be retried as a crash.
/// </summary>
public class JobCancelTests
{
    [Fact]
    public async Task ACancelledJobWhoseTrainerDiesOfTheSignalEndsCancelledWithoutARetry()
    {
        using var hub = new JobsTestHub(new()
        {
            ["Jobs:TrainerCommand:0"] = "/bin/sh",
            ["Jobs:TrainerCommand:1"] = "-c",
            ["Jobs:TrainerCommand:2"] = "echo started >&2; exec sleep 120",
        });
        await hub.UploadTextDatasetAsync();
        long id = await hub.SubmitAsync(JobsTestHub.Request("cancel-me"));
        await WaitForAttemptAsync(hub, id);

        var clock = Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.Accepted, (await hub.Client.DeleteAsync($"/api/jobs/{id}")).StatusCode);
        var job = await hub.WaitForAsync(id, j => (string)j["state"]! is "cancelled" or "failed" or "succeeded", TimeSpan.FromSeconds(30));
        Assert.Equal("cancelled", (string)job["state"]!);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"cancel took {clock.Elapsed.TotalSeconds:F1} s");
        var leases = await hub.LeasesAsync(id);
        Assert.Equal("cancelled", Assert.Single(leases).Outcome);
        Assert.DoesNotContain(await hub.EventsAsync(id), e => e.Type == "state" && e.Json.Contains("crashed"));
    }

    [Fact]
    public async Task AJobWhoseDatasetFileIsGoneFailsPermanentlyWithoutRetrying()
    {
        using var data = new Peft.Tests.Support.TempDir();
        long id;
        // Submitted on a host without workers; the blob is lost before any worker runs it (a disk cleaned by hand, a
        // restore without blobs); then a host with a worker starts over the same data dir and queue.
        using (var submitter = new JobsTestHub(new() { ["Jobs:RunServer"] = "false" }, dataDir: data.Path))
        {
            await submitter.UploadTextDatasetAsync();
            id = await submitter.SubmitAsync(JobsTestHub.Request("orphan"));
            string sha = (string)(await submitter.Client.GetFromJsonAsync<JsonObject>("/api/datasets/ledger-small"))!["sha256"]!;
            await using var scope = submitter.Factory.Services.CreateAsyncScope();
            File.Delete(scope.ServiceProvider.GetRequiredService<Peft.Storage.Blobs.IBlobStore>().TryGetLocalPath(sha)!);
        }
        using var hub = new JobsTestHub(dataDir: data.Path);
        var job = await hub.WaitForAsync(id, j => (string)j["state"]! is "failed" or "succeeded", TimeSpan.FromMinutes(2));
        Assert.Equal("failed", (string)job["state"]!);
        Assert.True((bool)job["errorIsPermanent"]!);
        Assert.Contains("ledger-small", (string)job["error"]!);
        Assert.Equal("failed", Assert.Single(await hub.LeasesAsync(id)).Outcome);
        Assert.DoesNotContain(await hub.EventsAsync(id), e => e.Type == "attempt");
    }

    private static async Task WaitForAttemptAsync(JobsTestHub hub, long id)
    {
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (!(await hub.EventsAsync(id)).Any(e => e.Type == "attempt"))
        {
            Assert.True(DateTime.UtcNow < until, "no training process was started");
            await Task.Delay(100);
        }
        await Task.Delay(300); // the shell has exec'd sleep
    }
}
