using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Peft.Storage.Infrastructure;
using Peft.Storage.Model;
using Peft.Storage.Services;
using Peft.Tests.Support;

namespace Peft.Tests.Hub;

/// <summary>Version numbers under concurrent registration, on the real SQLite file (PostgreSQL: <see cref="PostgresCatalogTests"/>).</summary>
public class CatalogConcurrencyTests
{
    private const int Threads = 8;
    private const int PerThread = 3;

    [Fact]
    public async Task EightThreadsRegisteringOneAdapterGetGaplessNumbers()
    {
        using var hub = new HubFactory();
        await GaplessUnderConcurrencyAsync(hub);
    }

    internal static async Task GaplessUnderConcurrencyAsync(HubFactory hub)
    {
        using var client = hub.CreateClient();
        await hub.RegisterGoldenBaseAsync(client, "llama_base");
        var dir = GoldenData.Dir("llama_lora");
        var config = await File.ReadAllBytesAsync(Path.Combine(dir, "adapter_config.json"));
        var weights = await File.ReadAllBytesAsync(Path.Combine(dir, "adapter_model.safetensors"));

        // Each thread uses its own DI scope (its own DbContext and database connection), as concurrent requests do.
        using var start = new Barrier(Threads);
        var tasks = Enumerable.Range(0, Threads).Select(t => Task.Run(async () =>
        {
            var numbers = new List<int>();
            start.SignalAndWait();
            for (int i = 0; i < PerThread; i++)
            {
                await using var scope = hub.Services.CreateAsyncScope();
                var catalog = scope.ServiceProvider.GetRequiredService<AdapterCatalog>();
                using var tmp = new TempDir();
                await File.WriteAllBytesAsync(tmp["adapter_config.json"], config);
                await File.WriteAllBytesAsync(tmp["adapter_model.safetensors"], weights);
                var v = await catalog.RegisterAsync("shared", tmp["adapter_config.json"], tmp["adapter_model.safetensors"], null,
                    new VersionProvenance { CreatedBy = $"thread-{t}", Metrics = new Dictionary<string, double> { ["thread"] = t } }, CancellationToken.None);
                numbers.Add(v.Number);
            }
            return numbers;
        })).ToList();
        var all = (await Task.WhenAll(tasks)).SelectMany(n => n).Order().ToList();

        Assert.Equal(Enumerable.Range(1, Threads * PerThread), all);
        await using var check = hub.Services.CreateAsyncScope();
        var db = check.ServiceProvider.GetRequiredService<CatalogDbContext>();
        var rows = await db.AdapterVersions.OrderBy(v => v.Number).Select(v => new { v.Number, v.State }).ToListAsync();
        Assert.Equal(Enumerable.Range(1, Threads * PerThread), rows.Select(r => r.Number));
        Assert.All(rows, r => Assert.Equal(VersionState.Ready, r.State));
        Assert.Equal(Threads * PerThread, (await db.Adapters.SingleAsync()).LastVersion);

        // Through HTTP too: the next upload is number 25.
        var response = await client.PostAsync("/api/adapters/shared/versions", HubFactory.AdapterForm(dir));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal(Threads * PerThread + 1, (int)(await response.Content.ReadFromJsonAsync<JsonObject>())!["version"]!);
    }
}
