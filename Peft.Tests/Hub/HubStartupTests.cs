using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Peft.Storage.Infrastructure;
using Peft.Tests.Data;

namespace Peft.Tests.Hub;

/// <summary>First start of the hub: migrations on a fresh SQLite file, the bundled defaults, OpenAPI.</summary>
public class HubStartupTests
{
    [Fact]
    public async Task FirstStartRegistersTheDemoModelAndTheCorpora()
    {
        using var hub = new HubFactory { Seed = true, Settings = { ["Hub:ModelsDir"] = RepoFiles.Path("models") } };
        using var client = hub.CreateClient();

        var models = (await client.GetFromJsonAsync<JsonArray>("/api/base-models"))!;
        var demo = Assert.Single(models, m => (string)m!["name"]! == "peft-demo")!;
        Assert.Equal("LlamaForCausalLM", (string)demo["architecture"]!);
        Assert.Equal(6_450_432L, (long)demo["parameterCount"]!); // the model card's 6.5 M, counted from the header
        Assert.Equal("BF16", (string)demo["dType"]!);

        var datasets = (await client.GetFromJsonAsync<JsonArray>("/api/datasets"))!;
        Assert.Equal(["austen", "sotu-pre1900"], datasets.Select(d => (string)d!["name"]!).Order());
        var austen = (await client.GetFromJsonAsync<JsonObject>("/api/datasets/austen"))!;
        Assert.Equal("Text", (string)austen["format"]!);
        Assert.Equal(File.ReadLines(RepoFiles.Path("data", "austen.jsonl")).Count(l => l.Length > 0), (int)austen["rowCount"]!);
        Assert.Equal(5, austen["preview"]!.AsArray().Count);

        // The database is a real file with the migrations applied.
        Assert.True(File.Exists(Path.Combine(hub.DataDir, "catalog.db")));
        await using var conn = new SqliteConnection($"Data Source={Path.Combine(hub.DataDir, "catalog.db")}");
        await conn.OpenAsync();
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM __EFMigrationsHistory";
        await using var scope = hub.Services.CreateAsyncScope();
        var migrations = scope.ServiceProvider.GetRequiredService<CatalogDbContext>().Database.GetMigrations().Count();
        Assert.True(migrations >= 2, "Initial and UserPasswords at least");
        Assert.Equal((long)migrations, (long)(await cmd.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task EveryEndpointHasADescriptionInTheOpenApiDocument()
    {
        using var hub = new HubFactory();
        using var client = hub.CreateClient();
        var doc = (await client.GetFromJsonAsync<JsonObject>("/openapi/v1.json"))!;
        var operations = doc["paths"]!.AsObject().SelectMany(p => p.Value!.AsObject().Select(o => (p.Key, o.Key, o.Value!))).ToList();
        Assert.True(operations.Count >= 14, $"only {operations.Count} operations");
        foreach (var (path, method, op) in operations)
            Assert.False(string.IsNullOrWhiteSpace((string?)op["description"]), $"{method} {path} has no description");
        Assert.Contains(operations, o => o.Item1 == "/api/adapters/{name}/versions/{version}/download");
    }

    [Fact]
    public async Task UnknownNamesAreProblemDetails404()
    {
        using var hub = new HubFactory();
        using var client = hub.CreateClient();
        foreach (var url in new[] { "/api/base-models/nope", "/api/datasets/nope", "/api/adapters/nope", "/api/adapters/nope/versions/1" })
        {
            var response = await client.GetAsync(url);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
            Assert.Contains("nope", (string)problem["detail"]!);
        }
    }
}
