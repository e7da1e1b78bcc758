using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Tests.Web;

/// <summary>The inference endpoints over real HTTP on the demo model.</summary>
public class ServingApiTests(ServingApiFixture fx) : IClassFixture<ServingApiFixture>
{
    internal static async Task<JsonNode> Post(HttpClient c, string url, object body, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var r = await c.PostAsJsonAsync(url, body);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == expected, $"{url}: {(int)r.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }

    /// <summary>The data payloads of a server-sent-event response (without the final [DONE]).</summary>
    private static async Task<List<JsonNode>> Stream(HttpClient c, string url, object body)
    {
        using var r = await c.PostAsJsonAsync(url, body);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("text/event-stream", r.Content.Headers.ContentType!.MediaType);
        var events = (await r.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e.StartsWith("data: ", StringComparison.Ordinal) ? e[6..] : throw new InvalidDataException(e)).ToList();
        if (url.StartsWith("/v1/", StringComparison.Ordinal)) Assert.Equal("[DONE]", events[^1]);
        return events.Where(e => e != "[DONE]").Select(e => JsonNode.Parse(e)!).ToList();
    }

    [Fact]
    public async Task CompletionsStreamedEqualNonStreamedForAFixedSeedAndAdaptersChangeTheAnswer()
    {
        var (c, _) = fx.Start();
        var body = new { model = "a", prompt = "It is a truth universally", max_tokens = 16, temperature = 0.8, top_p = 0.95, seed = 42, n = 2 };
        var whole = await Post(c, "/v1/completions", body);
        Assert.Equal("text_completion", (string?)whole["object"]);
        var choices = whole["choices"]!.AsArray();
        Assert.Equal(2, choices.Count);
        var chunks = await Stream(c, "/v1/completions", new { body.model, body.prompt, body.max_tokens, body.temperature, body.top_p, body.seed, body.n, stream = true });
        for (int i = 0; i < 2; i++)
        {
            string streamed = string.Concat(chunks.Select(ch => ch["choices"]![0]!).Where(ch => (int)ch["index"]! == i).Select(ch => (string?)ch["text"]));
            Assert.Equal((string?)choices[i]!["text"], streamed);
            Assert.Equal((string?)choices[i]!["finish_reason"], chunks.Select(ch => ch["choices"]![0]!).Last(ch => (int)ch["index"]! == i)["finish_reason"]!.GetValue<string>());
        }
        Assert.NotEqual((string?)choices[0]!["text"], (string?)choices[1]!["text"]);   // n sequences get seeds 42 and 43
        var usage = whole["usage"]!;
        Assert.InRange((int)usage["completion_tokens"]!, 2, 32);
        Assert.Equal((int)usage["prompt_tokens"]! + (int)usage["completion_tokens"]!, (int)usage["total_tokens"]!);

        var greedy = new { prompt = "It is a truth universally", max_tokens = 12, temperature = 0 };
        string baseText = (string)(await Post(c, "/v1/completions", greedy))["choices"]![0]!["text"]!;
        string onA = (string)(await Post(c, "/v1/completions", new { model = "a", greedy.prompt, greedy.max_tokens, greedy.temperature }))["choices"]![0]!["text"]!;
        string onB = (string)(await Post(c, "/v1/completions", new { model = "b@1", greedy.prompt, greedy.max_tokens, greedy.temperature }))["choices"]![0]!["text"]!;
        Assert.NotEqual(baseText, onA);
        Assert.NotEqual(onA, onB);
        string named = (string)(await Post(c, "/v1/completions", new { model = "peft-demo", greedy.prompt, greedy.max_tokens, greedy.temperature }))["choices"]![0]!["text"]!;
        Assert.Equal(baseText, named);
    }

    [Fact]
    public async Task ChatAndLogprobsAndModels()
    {
        var (c, _) = fx.Start();
        var chat = new { model = "b", messages = new[] { new { role = "user", content = "Tell me of Mr. Darcy." } }, max_tokens = 10, temperature = 0.7, seed = 5, logprobs = true, top_logprobs = 2 };
        var whole = await Post(c, "/v1/chat/completions", chat);
        var msg = whole["choices"]![0]!["message"]!;
        Assert.Equal("assistant", (string?)msg["role"]);
        var lp = whole["choices"]![0]!["logprobs"]!["content"]!.AsArray();
        Assert.Equal((int)whole["usage"]!["completion_tokens"]!, lp.Count);
        Assert.All(lp, t => { Assert.True((double)t!["logprob"]! <= 0); Assert.Equal(2, t["top_logprobs"]!.AsArray().Count); });
        var chunks = await Stream(c, "/v1/chat/completions", new { chat.model, chat.messages, chat.max_tokens, chat.temperature, chat.seed, stream = true });
        Assert.Equal("chat.completion.chunk", (string?)chunks[0]["object"]);
        Assert.Equal((string?)msg["content"], string.Concat(chunks.Select(ch => (string?)ch["choices"]![0]!["delta"]!["content"])));

        var models = await c.GetFromJsonAsync<JsonNode>("/v1/models");
        var data = models!["data"]!.AsArray();
        Assert.Equal("peft-demo", (string?)data[0]!["id"]);
        var a = data.Single(m => (string?)m!["id"] == "a")!;
        Assert.Equal("peft-demo", (string?)a["parent"]);
        Assert.Equal("a@1", (string?)a["root"]);
    }

    [Fact]
    public async Task LoraxGenerateStreamMergeAndFanOut()
    {
        var (c, _) = fx.Start();
        var parameters = new { adapter_id = "a", max_new_tokens = 10, details = true };
        var g = await Post(c, "/generate", new { inputs = "The President of the United States", parameters });
        var details = g["details"]!;
        Assert.Equal(10, (int)details["generated_tokens"]!);
        Assert.Equal(10, details["tokens"]!.AsArray().Count);
        var events = await Stream(c, "/generate_stream", new { inputs = "The President of the United States", parameters });
        Assert.Equal(10, events.Count);
        Assert.Equal((string?)g["generated_text"], (string?)events[^1]["generated_text"]);
        Assert.Equal((string?)g["generated_text"], string.Concat(events.Select(e => (string?)e["token"]!["text"])));

        // A linear merge of one adapter with weight 1 is that adapter.
        var merged = await Post(c, "/generate", new { inputs = "The President of the United States", parameters = new { max_new_tokens = 10, merged_adapters = new { ids = new[] { "a" }, weights = new[] { 1.0 }, merge_strategy = "linear" } } });
        Assert.Equal((string?)g["generated_text"], (string?)merged["generated_text"]);
        await Post(c, "/generate", new { inputs = "x", parameters = new { merged_adapters = new { ids = new[] { "a", "b" }, weights = new[] { 1.0, 1.0 }, merge_strategy = "ties" } } }, HttpStatusCode.UnprocessableEntity);

        // Fan-out: the same answers as one call per adapter, side by side in request order.
        var fan = (await Post(c, "/generate", new { inputs = "The President of the United States", parameters = new { adapter_ids = new[] { "b", "a", "" }, max_new_tokens = 10 } })).AsArray();
        Assert.Equal(["b", "a", ""], fan.Select(x => (string?)x!["adapter_id"]));
        Assert.Equal((string?)g["generated_text"], (string?)fan[1]!["generated_text"]);
        var onB = await Post(c, "/generate", new { inputs = "The President of the United States", parameters = new { adapter_id = "b", max_new_tokens = 10 } });
        Assert.Equal((string?)onB["generated_text"], (string?)fan[0]!["generated_text"]);
    }

    [Fact]
    public async Task ErrorsAreProblemDetails()
    {
        var (c, _) = fx.Start();
        async Task Expect(string url, object body, HttpStatusCode status, string needle)
        {
            using var r = await c.PostAsJsonAsync(url, body);
            string text = await r.Content.ReadAsStringAsync();
            Assert.True(r.StatusCode == status, $"{(int)r.StatusCode} {text}");
            Assert.Equal("application/problem+json", r.Content.Headers.ContentType!.MediaType);
            Assert.Contains(needle, text);
        }
        await Expect("/v1/completions", new { model = "nope", prompt = "x" }, HttpStatusCode.NotFound, "'nope' not found");
        await Expect("/v1/completions", new { model = "a@9", prompt = "x" }, HttpStatusCode.NotFound, "no version 9");
        await Expect("/v1/completions", new { model = "other", prompt = "x" }, HttpStatusCode.Conflict, "some-other-model");
        await Expect("/v1/completions", new { model = "../x", prompt = "x" }, HttpStatusCode.BadRequest, "adapter reference");
        await Expect("/v1/completions", new { prompt = "x", temperature = -1 }, HttpStatusCode.UnprocessableEntity, "'temperature'");
        await Expect("/v1/completions", new { prompt = "x", max_tokens = 0 }, HttpStatusCode.UnprocessableEntity, "'max_tokens'");
        await Expect("/v1/completions", new { max_tokens = 3 }, HttpStatusCode.BadRequest, "'prompt' is required");
        await Expect("/v1/chat/completions", new { messages = Array.Empty<object>() }, HttpStatusCode.BadRequest, "'messages'");
        await Expect("/generate", new { inputs = "x", parameters = new { adapter_id = "a", adapter_source = "s3" } }, HttpStatusCode.UnprocessableEntity, "adapter_source");

        var (busy, _) = fx.Start(("Serving:MaxQueue", "0"));
        using (var r = await busy.PostAsJsonAsync("/v1/completions", new { prompt = "x" }))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
            Assert.Equal("1", r.Headers.GetValues("Retry-After").Single());
            Assert.Equal("application/problem+json", r.Content.Headers.ContentType!.MediaType);   // the one exception handler wrote it
        }
        var (slow, _) = fx.Start(("Serving:RequestTimeoutSeconds", "0"));
        using (var r = await slow.PostAsJsonAsync("/v1/completions", new { prompt = "x", max_tokens = 50 }))
        {
            Assert.Equal(HttpStatusCode.GatewayTimeout, r.StatusCode);
            Assert.Contains("timeout", await r.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task AdapterManagementAndADisconnectingClientFreesItsSlot()
    {
        var (c, service) = fx.Start();
        var pre = await Post(c, "/v1/adapters/b/preload", new { });
        Assert.Equal("device", (string?)pre["tier"]);
        Assert.Equal(8, (int)pre["rank"]!);
        Assert.Equal(HttpStatusCode.NoContent, (await c.PutAsync("/v1/adapters/b/pin", null)).StatusCode);
        var list = await c.GetFromJsonAsync<JsonArray>("/v1/adapters");
        Assert.True((bool)list!.Single(x => (string?)x!["key"] == "b@1")!["pinned"]!);
        Assert.Equal(HttpStatusCode.NoContent, (await c.DeleteAsync("/v1/adapters/b@1")).StatusCode);
        Assert.DoesNotContain((await c.GetFromJsonAsync<JsonArray>("/v1/adapters"))!, x => (string?)x!["key"] == "b@1");
        Assert.Equal(HttpStatusCode.NotFound, (await c.DeleteAsync("/v1/adapters/b@1")).StatusCode);

        // A long stream whose client goes away: the sequence leaves the batch and its adapter lease is released.
        using var cts = new CancellationTokenSource();
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { model = "a", prompt = "It is", max_tokens = 1000, stream = true, temperature = 0 }), Encoding.UTF8, "application/json"),
        };
        var response = await c.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        Assert.StartsWith("data: ", await reader.ReadLineAsync(cts.Token));
        Assert.Equal(1, service.Cache.Snapshot().Single(x => x.Key == "a@1").ActiveSequences);
        cts.Cancel();
        response.Dispose();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (service.Cache.Snapshot().Single(x => x.Key == "a@1").ActiveSequences > 0 && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.Equal(0, service.Cache.Snapshot().Single(x => x.Key == "a@1").ActiveSequences);
        Assert.True(service.Cache.Snapshot().Single(x => x.Key == "a@1").Tokens < 1000);
    }
}
