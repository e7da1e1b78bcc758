using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Peft.Storage.Blobs;
using Peft.Storage.Infrastructure;
using Peft.Storage.Model;
using Peft.Storage.Services;
using Peft.Tests.Support;

namespace Peft.Tests.Hub;

/// <summary>
/// A hub process killed between writing a version's blobs and marking it ready: after restart no ready version lacks
/// its files, the half-registered version is failed (its number stays used), and garbage collection removes its blobs.
/// </summary>
public class CatalogCrashTests
{
    [Fact]
    public async Task KillBetweenBlobWriteAndReadyLeavesNoBrokenVersionAndNoOrphanBlob()
    {
        using var data = new TempDir();
        string adminKey; // the REST groups require a key; the child hub runs on the same database, so it accepts this one
        using (var first = new HubFactory(data.Path))
        using (var client = first.CreateClient())
        {
            adminKey = first.AdminKey;
            await first.RegisterGoldenBaseAsync(client, "llama_base");
            Assert.Equal(HttpStatusCode.Created, (await client.PostAsync("/api/adapters/a/versions", HubFactory.AdapterForm(GoldenData.Dir("llama_lora")))).StatusCode);
        }
        SqliteConnection.ClearAllPools();
        var readyBlobs = BlobFiles(data.Path);
        Assert.Equal(2, readyBlobs.Count);

        // A real hub process, told to stop right after the blobs of the next registration are durable.
        var marker = data["paused.txt"];
        int port = FreePort();
        using (var child = StartHub(data.Path, port, marker))
        {
            try
            {
                using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromMinutes(2) };
                http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", adminKey);
                await WaitUntilUpAsync(http, child);
                var upload = http.PostAsync("/api/adapters/a/versions", HubFactory.AdapterForm(GoldenData.Dir("llama_lora_rslora")));
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while (!File.Exists(marker) && DateTime.UtcNow < deadline && !upload.IsCompleted) await Task.Delay(50);
                Assert.True(File.Exists(marker), upload.IsCompleted ? $"upload finished: {await (await upload).Content.ReadAsStringAsync()}" : "never paused");
                Assert.Equal("a@2", await File.ReadAllTextAsync(marker));
                // Kill while the request is still open: a closed connection would let the server fail the version cleanly.
                child.Kill(entireProcessTree: true);
                await child.WaitForExitAsync();
            }
            finally
            {
                if (!child.HasExited) child.Kill(entireProcessTree: true);
                await child.WaitForExitAsync();
            }
        }

        // What the crash left: version 2 pending, its blobs on disk.
        var orphanBlobs = BlobFiles(data.Path).Except(readyBlobs).ToList();
        Assert.Equal(2, orphanBlobs.Count);
        Assert.Equal("Pending", await ScalarAsync(data.Path, "SELECT State FROM AdapterVersions WHERE Number = 2"));

        using var restarted = new HubFactory(data.Path) { Settings = { ["Hub:PendingTimeout"] = "00:00:00" } };
        using var c = restarted.CreateClient();
        // Startup recovery failed the stale pending version; it never resolves or downloads.
        var v2 = (await c.GetFromJsonAsync<JsonObject>("/api/adapters/a/versions/2"))!;
        Assert.Equal("failed", (string)v2["state"]!);
        Assert.Equal(HttpStatusCode.NotFound, (await c.GetAsync("/api/adapters/a/versions/2/download")).StatusCode);
        Assert.Equal(1, (int)(await c.GetFromJsonAsync<JsonObject>("/api/adapters/a/versions/1"))!["version"]!);

        await using (var scope = restarted.Services.CreateAsyncScope())
        {
            var catalog = scope.ServiceProvider.GetRequiredService<AdapterCatalog>();
            var report = await catalog.CollectGarbageAsync(TimeSpan.Zero, TimeSpan.Zero, CancellationToken.None);
            Assert.Equal(2, report.BlobsDeleted);
            Assert.Equal(2, report.BlobsKept);
            await AssertEveryReadyVersionHasVerifiedFilesAsync(scope.ServiceProvider);
        }
        Assert.Equal(readyBlobs, BlobFiles(data.Path));

        // Numbering continues after the failed number instead of reusing it.
        var again = await c.PostAsync("/api/adapters/a/versions", HubFactory.AdapterForm(GoldenData.Dir("llama_lora_rslora")));
        Assert.Equal(HttpStatusCode.Created, again.StatusCode);
        Assert.Equal(3, (int)(await again.Content.ReadFromJsonAsync<JsonObject>())!["version"]!);
        await using (var scope = restarted.Services.CreateAsyncScope())
            await AssertEveryReadyVersionHasVerifiedFilesAsync(scope.ServiceProvider);
    }

    private static async Task AssertEveryReadyVersionHasVerifiedFilesAsync(IServiceProvider services)
    {
        var db = services.GetRequiredService<CatalogDbContext>();
        var blobs = services.GetRequiredService<IBlobStore>();
        var ready = await db.AdapterVersions.Include(v => v.Files).Where(v => v.State == VersionState.Ready).ToListAsync();
        Assert.NotEmpty(ready);
        foreach (var f in ready.SelectMany(v => v.Files))
            Assert.True(await blobs.VerifyAsync(f.Sha256, CancellationToken.None), $"ready file {f.FileName} {f.Sha256} missing or corrupt");
    }

    private static List<string> BlobFiles(string dataDir) =>
        Directory.EnumerateFiles(Path.Combine(dataDir, "blobs", "sha256"), "*", SearchOption.AllDirectories).Select(Path.GetFileName).Order().ToList()!;

    private static async Task<string?> ScalarAsync(string dataDir, string sql)
    {
        await using var conn = new SqliteConnection($"Data Source={Path.Combine(dataDir, "catalog.db")};Pooling=False");
        await conn.OpenAsync();
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        return (string?)await cmd.ExecuteScalarAsync();
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private static Process StartHub(string dataDir, int port, string marker)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[]
        {
            Path.Combine(AppContext.BaseDirectory, "Peft.Web.dll"), "--urls", $"http://127.0.0.1:{port}",
            $"--Hub:DataDir={dataDir}", $"--Hub:ModelsDir={GoldenData.Root}", "--Hub:SeedDefaults=false",
            $"--Hub:PauseAfterBlobWriteMarker={marker}",
        }) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private static async Task WaitUntilUpAsync(HttpClient http, Process child)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            Assert.False(child.HasExited, $"hub process exited with {(child.HasExited ? child.ExitCode : 0)}");
            try
            {
                if ((await http.GetAsync("/api/base-models")).IsSuccessStatusCode) return;
            }
            catch (HttpRequestException) { }
            await Task.Delay(200);
        }
        Assert.Fail("hub process did not start within 90 s");
    }
}
