using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Peft.Core.Configs;
using Peft.Storage.Services;
using Peft.Tests.Support;
using TorchSharp;

namespace Peft.Tests.Web;

/// <summary>
/// Serving from the hub's catalog over real HTTP: references resolve through it, an alias move or a new version hot-swaps
/// new requests while a running sequence keeps its version, and encoder bases answer /v1/classify and /v1/embeddings.
/// </summary>
public class ServingCatalogTests(ServingApiFixture fx) : IClassFixture<ServingApiFixture>
{
    private static Task<JsonNode> Post(HttpClient c, string url, object body, HttpStatusCode expected = HttpStatusCode.OK) =>
        ServingApiTests.Post(c, url, body, expected);

    private static async Task<string> Complete(HttpClient c, string model, int maxTokens = 12, double temperature = 0.8) =>
        (string)(await Post(c, "/v1/completions", new { model, prompt = "It is a truth universally", max_tokens = maxTokens, temperature, seed = 3 }))["choices"]![0]!["text"]!;

    private async Task Register(IServiceProvider services, string adapter, string folder, string baseModel)
    {
        await using var scope = services.CreateAsyncScope();
        var catalog = scope.ServiceProvider.GetRequiredService<AdapterCatalog>();
        await catalog.RegisterAsync(adapter, Path.Combine(folder, "adapter_config.json"), Path.Combine(folder, "adapter_model.safetensors"),
            baseModel, new VersionProvenance { CreatedBy = "test" }, default);
    }

    private static async Task MoveAlias(IServiceProvider services, string adapter, string alias, int version)
    {
        await using var scope = services.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<AdapterCatalog>().MoveAliasAsync(adapter, alias, version, "test", default);
    }

    private static async Task RegisterBase(IServiceProvider services, string name, string folder)
    {
        await using var scope = services.CreateAsyncScope();
        var bases = scope.ServiceProvider.GetRequiredService<BaseModelService>();
        // The seeder may have registered the bundled demo model already.
        if ((await bases.ListAsync(default)).All(b => b.Name != name))
            await bases.RegisterAsync(name, folder, null, "test", default, allowOutsideModelsDir: true);
    }

    [Fact]
    public async Task AliasMovesAndNewVersionsHotSwapNewRequestsWhileARunningSequenceKeepsItsVersion()
    {
        var (c, service, services) = fx.StartWithServices();
        await RegisterBase(services, "peft-demo", ServingApiFixture.DemoModelDir());
        string Folder(string n) => Path.Combine(fx.Adapters.Path, n, "1");
        await Register(services, "cat", Folder("a"), "peft-demo");
        await Register(services, "cat", Folder("b"), "peft-demo");
        await MoveAlias(services, "cat", "production", 1);

        // The catalog's versions are the adapters' weights: the same fixed-seed answers as the folder copies.
        string v1 = await Complete(c, "cat@1"), v2 = await Complete(c, "cat@2");
        Assert.Equal(await Complete(c, "a"), v1);
        Assert.Equal(await Complete(c, "b"), v2);
        Assert.NotEqual(v1, v2);
        Assert.Equal(v1, await Complete(c, "cat@production"));
        Assert.Equal(v2, await Complete(c, "cat"));   // a bare name is the latest version
        string longV1 = await Complete(c, "cat@1", 500, 0);   // long enough to still run after the move below (context 512)

        // A long greedy stream on the alias, started before the move. Each decode step is slowed to 10 ms while it runs so
        // the stream (500 steps, >= 5 s) is certain to outlive the move and the short request below on any machine.
        service.Engine.AfterDecodeStep = () => Thread.Sleep(10);
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { model = "cat@production", prompt = "It is a truth universally", max_tokens = 500, temperature = 0, seed = 3, stream = true }), Encoding.UTF8, "application/json"),
        };
        using var response = await c.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var first = await reader.ReadLineAsync();
        Assert.StartsWith("data: ", first);
        await MoveAlias(services, "cat", "production", 2);
        // ...a request after the move gets version 2 at once, while the stream still runs on version 1.
        Assert.Equal(v2, await Complete(c, "cat@production"));
        Assert.Equal(1, service.Cache.Snapshot().Single(x => x.Key == "cat@1").ActiveSequences);
        string rest = await reader.ReadToEndAsync();
        service.Engine.AfterDecodeStep = null;
        string streamed = string.Concat((first + "\n" + rest).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e.Trim()).Where(e => e != "data: [DONE]")
            .Select(e => (string?)JsonNode.Parse(e[6..])!["choices"]![0]!["text"]));
        Assert.Equal(longV1, streamed);

        // Registering a version moves the bare name to it for the next request.
        await Register(services, "cat", Folder("c"), "peft-demo");
        string v3 = await Complete(c, "cat");
        Assert.Equal(await Complete(c, "c"), v3);
        Assert.NotEqual(v2, v3);
        var models = (await c.GetFromJsonAsync<JsonNode>("/v1/models"))!["data"]!.AsArray();
        Assert.Equal("cat@3", (string?)models.Single(m => (string?)m!["id"] == "cat")!["root"]);
    }

    [Fact]
    public async Task PromptAndPrefixTuningAdaptersFromTheCatalogShareTheBatchAndAnswerAsAlone()
    {
        var (c, service, services) = fx.StartWithServices();
        await RegisterBase(services, "peft-demo", ServingApiFixture.DemoModelDir());
        using var made = new TempDir();
        var methods = new (string Name, PeftConfig Config)[]
        {
            ("soft", new PromptTuningConfig { TaskType = Peft.Core.Models.TaskType.CausalLM, NumVirtualTokens = 8 }),
            ("ptune", new PromptEncoderConfig { TaskType = Peft.Core.Models.TaskType.CausalLM, NumVirtualTokens = 6, EncoderHiddenSize = 32 }),
            ("prefix", new PrefixTuningConfig { TaskType = Peft.Core.Models.TaskType.CausalLM, NumVirtualTokens = 10 }),
        };
        foreach (var (name, config) in methods)
        {
            using (var model = Peft.Training.Models.AutoModel.FromPretrained(ServingApiFixture.DemoModelDir()))
            using (var peft = Peft.Training.Tuners.PeftModel.Create(model, config, seed: 21))
                peft.SavePretrained(made.Sub(name));
            await Register(services, name, made.Sub(name), "peft-demo");
        }
        string[] models = ["soft", "ptune", "prefix", "a", "peft-demo"];
        async Task<(string Text, double[] Logprobs)> Greedy(string model)
        {
            var choice = (await Post(c, "/v1/completions", new { model, prompt = "It is a truth universally", max_tokens = 16, temperature = 0, logprobs = 1 }))["choices"]![0]!;
            return ((string)choice["text"]!, choice["logprobs"]!["token_logprobs"]!.AsArray().Select(x => (double)x!).ToArray());
        }
        var alone = new Dictionary<string, (string Text, double[] Logprobs)>();
        foreach (var m in models) alone[m] = await Greedy(m);
        // The virtual tokens count: the chosen tokens' log-probabilities move (random virtual tokens may keep the text).
        foreach (var (name, _) in methods)
            Assert.True(Math.Abs(alone[name].Logprobs[0] - alone["peft-demo"].Logprobs[0]) > 1e-3, $"{name} answers as the base does");

        // All at once, twice each: the prompt methods decode in the same batch as LoRA and base rows, and answer as alone.
        var together = await Task.WhenAll(models.Concat(models).Select(Greedy));
        for (int i = 0; i < together.Length; i++)
        {
            var want = alone[models[i % models.Length]];
            Assert.Equal(want.Text, together[i].Text);
            for (int t = 0; t < want.Logprobs.Length; t++) Assert.InRange(together[i].Logprobs[t] - want.Logprobs[t], -1e-3, 1e-3);
        }
        Assert.True(service.Engine.PeakBatch >= 3, $"requests did not share a batch (peak {service.Engine.PeakBatch})");
        Assert.Contains(service.Cache.Snapshot(), x => x.Key == "prefix@1" && x.Tier == "device");
    }

    [Fact]
    public async Task ClassifyAndEmbeddingsOnAnEncoderBaseMatchTheGoldenForward()
    {
        var (c, _, services) = fx.StartWithServices(("Serving:Encoders:0:Name", "bert_base"), ("Serving:Encoders:0:Path", GoldenData.Dir("bert_base")));
        await RegisterBase(services, "peft-demo", ServingApiFixture.DemoModelDir());
        await RegisterBase(services, "bert_base", GoldenData.Dir("bert_base"));
        await Register(services, "bert-cls", GoldenData.Dir("bert_lora"), "bert_base");
        await Register(services, "demo-lora", Path.Combine(fx.Adapters.Path, "a", "1"), "peft-demo");

        var expected = GoldenData.Expected("bert_lora");
        var ids = expected["input_ids"];
        var mask = expected["attention_mask"];
        var inputs = Enumerable.Range(0, (int)ids.shape[0])
            .Select(i => ids[i].data<long>().Take((int)mask[i].sum().item<long>()).Select(x => (int)x).ToArray()).ToArray();

        // Label probabilities of the SEQ_CLS LoRA adapter = softmax of PEFT's logits (golden), within 1e-4.
        var cls = await Post(c, "/v1/classify", new { model = "bert-cls", input = inputs });
        var probs = expected["logits"].softmax(-1);
        var data = cls["data"]!.AsArray();
        Assert.Equal(inputs.Length, data.Count);
        for (int i = 0; i < inputs.Length; i++)
        {
            var got = data[i]!["probs"]!.AsArray().Select(x => (float)x!).ToArray();
            var want = probs[i].data<float>().ToArray();
            Assert.Equal(3, got.Length);
            for (int j = 0; j < 3; j++) Assert.InRange(got[j] - want[j], -1e-4f, 1e-4f);
            Assert.Equal($"LABEL_{Array.IndexOf(want, want.Max())}", (string?)data[i]!["label"]);
            Assert.InRange((float)data[i]!["labels"]!["LABEL_0"]! - want[0], -1e-4f, 1e-4f);
        }
        Assert.Equal(inputs.Sum(x => x.Length), (int)cls["usage"]!["prompt_tokens"]!);

        // Embeddings of the base: masked mean of its last hidden state (golden), L2-normalised.
        var baseExpected = GoldenData.Expected("bert_base");
        string last = baseExpected.Keys.Where(k => k.StartsWith("hidden_states.", StringComparison.Ordinal)).MaxBy(k => int.Parse(k[14..], System.Globalization.CultureInfo.InvariantCulture))!;
        var emb = await Post(c, "/v1/embeddings", new { model = "bert_base", input = inputs });
        Assert.Equal("list", (string?)emb["object"]);
        for (int i = 0; i < inputs.Length; i++)
        {
            using var mean = baseExpected[last][i].narrow(0, 0, inputs[i].Length).mean([0]);
            using var want = torch.nn.functional.normalize(mean, p: 2, dim: 0);
            var got = emb["data"]![i]!["embedding"]!.AsArray().Select(x => (float)x!).ToArray();
            Assert.Equal("embedding", (string?)emb["data"]![i]!["object"]);
            GoldenData.AssertClose(want, torch.tensor(got), 1e-4, $"embedding {i}");
        }

        // Routing by the adapter's base: a generation adapter on classify, or an encoder adapter on completions, is 409.
        await Post(c, "/v1/classify", new { model = "demo-lora", input = inputs[0] }, HttpStatusCode.Conflict);
        await Post(c, "/v1/completions", new { model = "bert-cls", prompt = "x" }, HttpStatusCode.Conflict);
        await Post(c, "/v1/classify", new { model = "nope", input = inputs[0] }, HttpStatusCode.NotFound);
        await Post(c, "/v1/embeddings", new { model = "bert_base", input = "no tokenizer here" }, HttpStatusCode.UnprocessableEntity);
        await Post(c, "/v1/embeddings", new { model = "bert_base", input = new[] { 100000 } }, HttpStatusCode.UnprocessableEntity);
        var listed = (await c.GetFromJsonAsync<JsonNode>("/v1/models"))!["data"]!.AsArray();
        Assert.Equal("bert_base", (string?)listed.Single(m => (string?)m!["id"] == "bert-cls")!["parent"]);
    }

    [Fact]
    public async Task TheModelHealthCheckIsTaggedReadyAndHealthyOnceLoaded()
    {
        var (_, _, services) = fx.StartWithServices();
        var health = services.GetRequiredService<HealthCheckService>();
        HealthReport report;
        var deadline = DateTime.UtcNow.AddMinutes(2);
        do report = await health.CheckHealthAsync(r => r.Tags.Contains("ready"));
        while (report.Status != HealthStatus.Healthy && DateTime.UtcNow < deadline && await Task.Delay(100).ContinueWith(_ => true));
        Assert.Equal(HealthStatus.Healthy, report.Entries["model"].Status);

        var (_, _, broken) = fx.StartWithServices(("Serving:Encoders:0:Path", "/nonexistent/encoder"));
        var brokenHealth = broken.GetRequiredService<HealthCheckService>();
        deadline = DateTime.UtcNow.AddMinutes(2);
        do report = await brokenHealth.CheckHealthAsync(r => r.Tags.Contains("ready"));
        while (report.Entries["model"].Description!.Contains("still loading") && DateTime.UtcNow < deadline && await Task.Delay(100).ContinueWith(_ => true));
        Assert.Equal(HealthStatus.Unhealthy, report.Entries["model"].Status);
        Assert.Contains("/nonexistent/encoder", report.Entries["model"].Description);
    }
}
