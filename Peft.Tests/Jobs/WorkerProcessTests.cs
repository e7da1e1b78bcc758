using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Peft.Storage;
using Peft.Tests.Data;
using Peft.Tests.Hub;

namespace Peft.Tests.Jobs;

/// <summary>
/// Two processes on one PostgreSQL database (catalog and Hangfire storage): the web host runs no Hangfire server, a
/// separate <c>--role worker</c> process of the same binary picks the job up, trains it in its child process and
/// registers the adapter, which the web process then serves.
/// </summary>
public class WorkerProcessTests
{
    [PostgresFact]
    public async Task AWorkerProcessOnTheSameDatabaseRunsAJobSubmittedThroughTheWebProcess()
    {
        using var hub = new JobsTestHub(new() { ["Jobs:RunServer"] = "false" }, DatabaseProvider.Postgres);
        await hub.UploadTextDatasetAsync();
        var catalog = hub.Factory.Services.GetRequiredService<IOptions<CatalogOptions>>().Value;
        var config = hub.Factory.Services.GetRequiredService<IConfiguration>();

        using var worker = StartWorker(new()
        {
            ["Hub__DatabaseProvider"] = "Postgres",
            ["ConnectionStrings__Catalog"] = config.GetConnectionString("Catalog"),
            ["Hub__DataDir"] = catalog.DataDir,
            ["Hub__ModelsDir"] = catalog.ModelsDir,
            ["Hub__CorporaDir"] = catalog.CorporaDir,
            ["Hub__SeedDefaults"] = "false",
            ["Jobs__Storage"] = "Postgres",
            ["Jobs__LeaseTimeout"] = "00:01:00",
            ["Jobs__HeartbeatInterval"] = "00:00:01",
            ["Jobs__QueuePollInterval"] = "00:00:01",
        });
        try
        {
            long id = await hub.SubmitAsync(JobsTestHub.Request("worker-made", maxSteps: 4));
            var job = await hub.WaitForStateAsync(id, "succeeded", TimeSpan.FromMinutes(12));
            Assert.Equal("succeeded", (string)job["state"]!);
            Assert.Equal("worker-made@1", (string)job["resultVersion"]!);
            // The attempt was the worker's: its lease owner names the worker's pid, not this (web) process.
            var lease = Assert.Single(await hub.LeasesAsync(id));
            Assert.Equal(worker.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), lease.Owner.Split(':')[1]);
            Assert.Equal("succeeded", lease.Outcome);
            // The web process serves what the worker registered.
            var download = await hub.Client.GetAsync("/api/adapters/worker-made/versions/1/download?file=adapter_model.safetensors");
            Assert.True(download.IsSuccessStatusCode, await download.Content.ReadAsStringAsync());
        }
        finally
        {
            worker.Kill(entireProcessTree: true);
            await worker.WaitForExitAsync();
        }
    }

    /// <summary><c>dotnet Peft.Web.dll --role worker</c> with <paramref name="environment"/>; its output is drained and discarded.</summary>
    private static Process StartWorker(Dictionary<string, string?> environment)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h && File.Exists(h) ? h : "dotnet";
        var psi = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        psi.ArgumentList.Add(typeof(Program).Assembly.Location);
        psi.ArgumentList.Add("--role");
        psi.ArgumentList.Add("worker");
        psi.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start the worker");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }
}
