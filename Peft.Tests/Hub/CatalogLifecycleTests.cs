using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Peft.Tests.Support;

namespace Peft.Tests.Hub;

/// <summary>Aliases and their history, resolution, soft delete, listing filters and download headers, over HTTP.</summary>
public class CatalogLifecycleTests
{
    private static async Task<int> UploadAsync(HttpClient c, string name, string golden, string? metrics = null, string? tags = null)
    {
        var form = HubFactory.AdapterForm(GoldenData.Dir(golden));
        if (metrics is not null) form.Add(new StringContent(metrics), "metrics");
        if (tags is not null) form.Add(new StringContent(tags), "tags");
        var r = await c.PostAsync($"/api/adapters/{name}/versions", form);
        Assert.True(r.StatusCode == HttpStatusCode.Created, await r.Content.ReadAsStringAsync());
        return (int)(await r.Content.ReadFromJsonAsync<JsonObject>())!["version"]!;
    }

    [Fact]
    public async Task AliasMovesAreAllRecordedAndProductionResolvesToTheNewVersion()
    {
        using var hub = new HubFactory();
        await AliasMovesAsync(hub);
    }

    internal static async Task AliasMovesAsync(HubFactory hub)
    {
        using var c = hub.CreateClient();
        await hub.RegisterGoldenBaseAsync(c, "llama_base");
        await UploadAsync(c, "chat", "llama_lora");
        await UploadAsync(c, "chat", "llama_lora_rslora");
        await UploadAsync(c, "chat", "llama_lora_dora");

        foreach (var v in new[] { 1, 2, 1, 3 })
            (await c.PutAsJsonAsync("/api/adapters/chat/aliases/production", new { version = v })).EnsureSuccessStatusCode();
        (await c.PutAsJsonAsync("/api/adapters/chat/aliases/staging", new { version = 2 })).EnsureSuccessStatusCode();

        var resolved = (await c.GetFromJsonAsync<JsonObject>("/api/adapters/chat/versions/production"))!;
        Assert.Equal(3, (int)resolved["version"]!);
        var history = (await c.GetFromJsonAsync<JsonArray>("/api/adapters/chat/aliases/production/history"))!;
        Assert.Equal([(int?)null, 1, 2, 1], history.Select(h => (int?)h!["fromVersion"]));
        Assert.Equal([1, 2, 1, 3], history.Select(h => (int)h!["toVersion"]!));
        Assert.All(history, h => Assert.NotNull((string?)h!["movedAt"]));

        // Downloads follow the alias: the weights of version 3 (DoRA).
        var weights = await c.GetByteArrayAsync("/api/adapters/chat/versions/production/download?file=adapter_model.safetensors");
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(GoldenData.Dir("llama_lora_dora"), "adapter_model.safetensors")), weights);

        // A version an alias points at cannot be deleted; once the alias moves away it can, and no longer resolves.
        var refused = await c.DeleteAsync("/api/adapters/chat/versions/2");
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains("staging", await refused.Content.ReadAsStringAsync());
        (await c.PutAsJsonAsync("/api/adapters/chat/aliases/staging", new { version = 1 })).EnsureSuccessStatusCode();
        Assert.Equal(HttpStatusCode.NoContent, (await c.DeleteAsync("/api/adapters/chat/versions/2")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await c.GetAsync("/api/adapters/chat/versions/2")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await c.PutAsJsonAsync("/api/adapters/chat/aliases/production", new { version = 2 })).StatusCode);
        var adapter = (await c.GetFromJsonAsync<JsonObject>("/api/adapters/chat"))!;
        Assert.Equal([1, 3], adapter["versions"]!.AsArray().Select(v => (int)v!["version"]!));
        Assert.Equal(3, (int)adapter["aliases"]!["production"]!);
    }

    [Fact]
    public async Task DownloadsCarryTheSha256ETagAndServeRangesAndConditionalRequests()
    {
        using var hub = new HubFactory();
        using var c = hub.CreateClient();
        await hub.RegisterGoldenBaseAsync(c, "llama_base");
        await UploadAsync(c, "r", "llama_lora", metrics: "{\"eval_loss\": 1.25}");
        var original = await File.ReadAllBytesAsync(Path.Combine(GoldenData.Dir("llama_lora"), "adapter_model.safetensors"));
        var url = "/api/adapters/r/versions/1/download?file=adapter_model.safetensors";

        var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Range = new RangeHeaderValue(100, 199);
        var partial = await c.SendAsync(request);
        Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
        Assert.Equal(original[100..200], await partial.Content.ReadAsByteArrayAsync());

        var full = await c.GetAsync(url);
        var etag = full.Headers.ETag!;
        var conditional = new HttpRequestMessage(HttpMethod.Get, url);
        conditional.Headers.IfNoneMatch.Add(etag);
        Assert.Equal(HttpStatusCode.NotModified, (await c.SendAsync(conditional)).StatusCode);

        // The zip is deterministic: the same bytes and ETag every time; its card has the metrics.
        var zip1 = await c.GetAsync("/api/adapters/r/versions/1/download");
        var zip2 = await c.GetAsync("/api/adapters/r/versions/1/download");
        Assert.Equal(zip1.Headers.ETag, zip2.Headers.ETag);
        Assert.Equal(await zip1.Content.ReadAsByteArrayAsync(), await zip2.Content.ReadAsByteArrayAsync());
        var card = await c.GetStringAsync("/api/adapters/r/versions/1/download?file=README.md");
        Assert.Contains("| eval_loss | 1.25 |", card);
        Assert.Equal(HttpStatusCode.NotFound, (await c.GetAsync("/api/adapters/r/versions/1/download?file=secrets.txt")).StatusCode);
    }

    [Fact]
    public async Task ListFiltersByBaseMethodTaskTagAndMetricWithPaging()
    {
        using var hub = new HubFactory();
        using var c = hub.CreateClient();
        await hub.RegisterGoldenBaseAsync(c, "llama_base");
        await hub.RegisterGoldenBaseAsync(c, "bert_base");
        await UploadAsync(c, "l-lora", "llama_lora", metrics: "{\"eval_loss\": 2.0}", tags: "chat,small");
        await UploadAsync(c, "l-ia3", "llama_ia3", metrics: "{\"eval_loss\": 3.0}");
        await UploadAsync(c, "b-lora", "bert_lora", tags: "classifier");

        async Task<string[]> Names(string query) =>
            (await c.GetFromJsonAsync<JsonObject>("/api/adapters" + query))!["items"]!.AsArray().Select(i => (string)i!["name"]!).ToArray();
        Assert.Equal(["b-lora", "l-ia3", "l-lora"], await Names(""));
        Assert.Equal(["l-ia3", "l-lora"], await Names("?baseModel=llama_base"));
        Assert.Equal(["b-lora", "l-lora"], await Names("?method=lora"));
        Assert.Equal(["b-lora"], await Names("?task=SEQ_CLS"));
        Assert.Equal(["l-lora"], await Names("?tag=chat"));
        Assert.Equal(["l-lora"], await Names("?metric=eval_loss<2.5"));
        Assert.Equal(["l-ia3", "l-lora"], await Names("?metric=eval_loss>=2"));
        var page2 = (await c.GetFromJsonAsync<JsonObject>("/api/adapters?page=2&pageSize=2"))!;
        Assert.Equal(3, (int)page2["total"]!);
        Assert.Equal(["l-lora"], page2["items"]!.AsArray().Select(i => (string)i!["name"]!));
        Assert.Equal(HttpStatusCode.BadRequest, (await c.GetAsync("/api/adapters?metric=eval_loss")).StatusCode);

        // An adapter name stays on its base model.
        var other = await c.PostAsync("/api/adapters/l-lora/versions", HubFactory.AdapterForm(GoldenData.Dir("bert_lora")));
        Assert.Equal(HttpStatusCode.Conflict, other.StatusCode);

        var cmp = (await c.GetFromJsonAsync<JsonObject>("/api/adapters/l-lora/compare?a=1&b=1"))!;
        Assert.Empty(cmp["configDifferences"]!.AsArray());
    }
}
