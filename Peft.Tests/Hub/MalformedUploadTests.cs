using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Peft.Storage;
using static Peft.Tests.Hub.UploadCraft;

namespace Peft.Tests.Hub;

/// <summary>A hub with llama_base registered and small upload limits (so "too large" is cheap to send).</summary>
public class MalformedUploadFixture : IAsyncLifetime
{
    public const long MaxWeights = 2L << 20;
    public const long MaxRequest = 4L << 20;
    private readonly DatabaseProvider _provider;

    public MalformedUploadFixture() : this(DatabaseProvider.Sqlite) { }

    protected MalformedUploadFixture(DatabaseProvider provider) => _provider = provider;

    public HubFactory Hub { get; private set; } = null!;

    private HubFactory NewHub() => new(provider: _provider)
    {
        Settings =
        {
            ["Hub:Uploads:MaxAdapterWeightsBytes"] = MaxWeights.ToString(),
            ["Hub:Uploads:MaxAdapterRequestBytes"] = MaxRequest.ToString(),
            ["Hub:Uploads:MaxConfigBytes"] = (1 << 20).ToString(),
        },
    };

    public HttpClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (!PostgresTestDatabase.Usable(_provider)) return; // its tests are skipped
        Hub = NewHub();
        Client = Hub.CreateClient();
        await Hub.RegisterGoldenBaseAsync(Client, "llama_base");
        // One good version, so "unchanged" is checked against a non-empty catalog.
        var ok = await Client.PostAsync("/api/adapters/good/versions", Files(LlamaLoraConfig, LlamaLoraWeights));
        Assert.Equal(HttpStatusCode.Created, ok.StatusCode);
    }

    public Task DisposeAsync()
    {
        Client?.Dispose();
        Hub?.Dispose();
        return Task.CompletedTask;
    }
}

/// <summary>
/// Each kind of broken upload gets a problem-details 4xx that names the problem, and leaves the adapter, version and
/// file rows and the blob count exactly as they were.
/// </summary>
public class MalformedUploadTests(MalformedUploadFixture fixture) : IClassFixture<MalformedUploadFixture>
{
    private sealed record Case(Func<HttpContent> Body, HttpStatusCode Status, string Expect, string Adapter = "broken");

    private static readonly byte[] Zeros = new byte[1_500_000];

    private static readonly Dictionary<string, Case> Cases = new()
    {
        // Request shape (400)
        ["no file fields"] = new(() => new MultipartFormDataContent { { new StringContent("x"), "description" } }, HttpStatusCode.BadRequest, "multipart fields missing"),
        ["not multipart"] = new(() => JsonContent.Create(new { file = "x" }), HttpStatusCode.BadRequest, "multipart/form-data"),
        ["zip and files together"] = new(() =>
        {
            var f = Files(LlamaLoraConfig, LlamaLoraWeights);
            f.Add(HubFactory.Bytes(Zip(("adapter_config.json", LlamaLoraConfig))), "file", "a.zip");
            return f;
        }, HttpStatusCode.BadRequest, "not both"),
        ["config without weights"] = new(() => new MultipartFormDataContent { { HubFactory.Bytes(LlamaLoraConfig), "adapter_config", "adapter_config.json" } },
            HttpStatusCode.BadRequest, "'adapter_model'"),
        ["invalid adapter name"] = new(() => Files(LlamaLoraConfig, LlamaLoraWeights), HttpStatusCode.BadRequest, "may only hold", Adapter: "bad name!"),
        ["metrics not JSON"] = new(() =>
        {
            var f = Files(LlamaLoraConfig, LlamaLoraWeights);
            f.Add(new StringContent("{loss: low}"), "metrics");
            return f;
        }, HttpStatusCode.BadRequest, "'metrics'"),

        // Archive safety (422 / 413)
        ["not a zip"] = new(() => ZipForm(Encoding.ASCII.GetBytes("this is not a zip file at all")), HttpStatusCode.UnprocessableEntity, "not a valid zip"),
        ["zip without config"] = new(() => ZipForm(Zip(("adapter_model.safetensors", LlamaLoraWeights))), HttpStatusCode.UnprocessableEntity, "has no adapter_config.json"),
        ["zip without weights"] = new(() => ZipForm(Zip(("adapter_config.json", LlamaLoraConfig))), HttpStatusCode.UnprocessableEntity, "has no adapter_model.safetensors"),
        ["zip slip with .."] = new(() => ZipForm(Zip(("../adapter_config.json", LlamaLoraConfig), ("adapter_model.safetensors", LlamaLoraWeights))),
            HttpStatusCode.UnprocessableEntity, "zip slip"),
        ["zip slip absolute path"] = new(() => ZipForm(Zip(("/tmp/adapter_config.json", LlamaLoraConfig), ("adapter_model.safetensors", LlamaLoraWeights))),
            HttpStatusCode.UnprocessableEntity, "absolute path"),
        ["nested zip bomb"] = new(() => ZipForm(Zip(("adapter_config.json", LlamaLoraConfig), ("adapter_model.safetensors", LlamaLoraWeights),
            ("inner.zip", Zip(("adapter_model.safetensors", Zeros))))), HttpStatusCode.UnprocessableEntity, "nested archives"),
        ["zip bomb"] = new(() => ZipForm(Zip(("adapter_config.json", LlamaLoraConfig), ("adapter_model.safetensors", Zeros))),
            HttpStatusCode.RequestEntityTooLarge, "zip bomb"),
        ["zip entry over the size limit"] = new(() => ZipForm(Zip(("adapter_config.json", LlamaLoraConfig),
            ("adapter_model.safetensors", Encoding.ASCII.GetBytes(new string('x', 2_200_000)))) ), HttpStatusCode.RequestEntityTooLarge, "over the 2097152-byte limit"),
        ["unexpected file in zip"] = new(() => ZipForm(Zip(("adapter_config.json", LlamaLoraConfig), ("adapter_model.safetensors", LlamaLoraWeights),
            ("run.sh", Encoding.ASCII.GetBytes("rm -rf /")))), HttpStatusCode.UnprocessableEntity, "'run.sh' is not part of an adapter"),
        ["duplicate zip entry"] = new(() => ZipForm(Zip(("adapter_config.json", LlamaLoraConfig), ("adapter_model.safetensors", LlamaLoraWeights),
            ("x/adapter_config.json", LlamaLoraConfig))), HttpStatusCode.UnprocessableEntity, "more than once"),
        ["too many zip entries"] = new(() => ZipForm(Zip(Enumerable.Range(0, 20).Select(i => ($"README{i}.md", new byte[] { 1 })).ToArray())),
            HttpStatusCode.UnprocessableEntity, "20 entries"),

        // Sizes (413)
        ["weights over the size limit"] = new(() => Weights(new byte[MalformedUploadFixture.MaxWeights + 1]), HttpStatusCode.RequestEntityTooLarge, "larger than the 2097152-byte limit"),
        ["request over the size limit"] = new(() => Weights(new byte[MalformedUploadFixture.MaxRequest + 10]), HttpStatusCode.RequestEntityTooLarge, "for this endpoint"),
        ["config over the size limit"] = new(() => ConfigOnly(Encoding.ASCII.GetBytes("{\"peft_type\":\"LORA\",\"x\":\"" + new string('a', 1_100_000) + "\"}")),
            HttpStatusCode.RequestEntityTooLarge, "larger than the 1048576-byte limit"),

        // safetensors (422)
        ["truncated safetensors"] = new(() => Weights([1, 2, 3, 4, 5]), HttpStatusCode.UnprocessableEntity, "shorter than the 8-byte header length prefix"),
        ["header length past the end"] = new(() => Weights(LlamaLoraWeights[..100]), HttpStatusCode.UnprocessableEntity, "larger than the file allows"),
        ["absurd header length"] = new(() => Weights([.. BitConverter.GetBytes(1UL << 40), .. new byte[16]]), HttpStatusCode.UnprocessableEntity, "absurd"),
        ["header not JSON"] = new(() => Weights(Raw("{not json", 0)), HttpStatusCode.UnprocessableEntity, "header is not valid JSON"),
        ["header not UTF-8"] = new(() => Weights(RawBytes([0x7B, 0xFF, 0xFE, 0x7D], 0)), HttpStatusCode.UnprocessableEntity, "not valid UTF-8"),
        ["overlapping offsets"] = new(() => Weights(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12)),
            HttpStatusCode.UnprocessableEntity, "overlapping tensor ranges"),
        ["hole between tensors"] = new(() => Weights(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12)),
            HttpStatusCode.UnprocessableEntity, "not contiguous"),
        ["trailing bytes"] = new(() => Weights(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8)), HttpStatusCode.UnprocessableEntity, "trailing bytes"),
        ["unknown dtype"] = new(() => Weights(Raw("{\"a\":{\"dtype\":\"F7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4)), HttpStatusCode.UnprocessableEntity, "unknown dtype 'F7'"),
        ["shape and offsets disagree"] = new(() => Weights(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4)), HttpStatusCode.UnprocessableEntity, "shape/offsets inconsistent"),

        // adapter_config.json (422)
        ["config not JSON"] = new(() => ConfigOnly(Encoding.UTF8.GetBytes("peft_type = LORA")), HttpStatusCode.UnprocessableEntity, "adapter_config.json is not valid JSON"),
        ["config not an object"] = new(() => ConfigOnly(Encoding.UTF8.GetBytes("[1, 2]")), HttpStatusCode.UnprocessableEntity, "must be a JSON object"),
        ["config not UTF-8"] = new(() => ConfigOnly([0x7B, 0xC3, 0x28, 0x7D]), HttpStatusCode.UnprocessableEntity, "not valid UTF-8"),
        ["config without peft_type"] = new(() => ConfigOnly(Config(o => o.Remove("peft_type"))), HttpStatusCode.UnprocessableEntity, "'peft_type' is missing"),
        ["unknown peft type"] = new(() => ConfigOnly(Config(o => o["peft_type"] = "LOHA")), HttpStatusCode.UnprocessableEntity, "peft_type 'LOHA' is not supported"),
        ["config field of the wrong type"] = new(() => ConfigOnly(Config(o => o["r"] = "eight")), HttpStatusCode.UnprocessableEntity, "'r' must be an integer"),
        ["invalid config value"] = new(() => ConfigOnly(Config(o => o["lora_dropout"] = 1.5)), HttpStatusCode.UnprocessableEntity, "'lora_dropout' must be in [0, 1)"),

        // Base model (422)
        ["no base model named"] = new(() => ConfigOnly(Config(o => o.Remove("base_model_name_or_path"))), HttpStatusCode.UnprocessableEntity, "no base model"),
        ["base model not registered"] = new(() => Files(LlamaLoraConfig, LlamaLoraWeights, baseModel: "gpt-j-6b"), HttpStatusCode.UnprocessableEntity, "'gpt-j-6b' is not registered"),

        // Fit to the base (422)
        ["target module missing from the base"] = new(() => ConfigOnly(Config(o => o["target_modules"] = new JsonArray("q_proj", "v_proj", "qkv_proj"))),
            HttpStatusCode.UnprocessableEntity, "target module 'qkv_proj' does not exist in the base model"),
        ["target regex matching nothing"] = new(() => ConfigOnly(Config(o => o["target_modules"] = ".*\\.attn\\.c_attn")), HttpStatusCode.UnprocessableEntity, "matches no module"),
        ["wrong input width"] = new(() => Weights(Safetensors(LlamaLoraTensors("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", [4, 65]))),
            HttpStatusCode.UnprocessableEntity, "expected [4, 64]"),
        ["wrong output width"] = new(() => Weights(Safetensors(LlamaLoraTensors("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", [64, 4]))),
            HttpStatusCode.UnprocessableEntity, "expected [32, 4]"),
        ["rank differs from the config"] = new(() => ConfigOnly(Config(o => o["r"] = 8)), HttpStatusCode.UnprocessableEntity, "has rank 4 but the config gives module"),
        ["module missing from the base"] = new(() => Weights(Safetensors(LlamaLoraTensors(add: ("base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight", [4, 64])))),
            HttpStatusCode.UnprocessableEntity, "'model.layers.9.self_attn.q_proj'"),
        ["tensor of another method"] = new(() => Weights(Safetensors(LlamaLoraTensors(add: ("base_model.model.model.layers.0.mlp.down_proj.ia3_l", [1, 176])))),
            HttpStatusCode.UnprocessableEntity, "which a LORA adapter does not have"),
        ["stray tensor"] = new(() => Weights(Safetensors(LlamaLoraTensors(add: ("base_model.model.model.norm.weight", [64])))),
            HttpStatusCode.UnprocessableEntity, "neither an adapter weight nor under modules_to_save"),
        ["no tensors"] = new(() => Weights(Raw("{}", 0)), HttpStatusCode.UnprocessableEntity, "holds no tensors"),
        ["half a LoRA pair"] = new(() => Weights(Safetensors(LlamaLoraTensors().Where(t => !t.Item1.Contains("layers.1.self_attn.q_proj.lora_B")).ToArray())),
            HttpStatusCode.UnprocessableEntity, "not both lora_A and lora_B"),
        ["prompt width differs from the base"] = new(() => Files(
            File.ReadAllBytes(Path.Combine(Support.GoldenData.Dir("llama_prompt_tuning"), "adapter_config.json")) is var c
                ? Encoding.UTF8.GetBytes(JsonNode.Parse(c)!.AsObject().Also(o => o["token_dim"] = 48).ToJsonString()) : [],
            Safetensors(("prompt_embeddings", [5, 48]))), HttpStatusCode.UnprocessableEntity, "token_dim is 48 but the base model's hidden size is 64"),
    };

    public static TheoryData<string> Names() => new(Cases.Keys);

    [Fact]
    public void AtLeastThirtyKinds() => Assert.True(Cases.Count >= 30, $"{Cases.Count} kinds");

    [Theory, MemberData(nameof(Names))]
    public Task IsRefusedWithAProblemNamingItAndNothingChanges(string kind) => AssertRefusedAsync(fixture, kind);

    internal static async Task AssertRefusedAsync(MalformedUploadFixture fixture, string kind)
    {
        var c = Cases[kind];
        var before = await fixture.Hub.CountsAsync();
        var response = await fixture.Client.PostAsync($"/api/adapters/{Uri.EscapeDataString(c.Adapter)}/versions", c.Body());
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(c.Status == response.StatusCode, $"{kind}: expected {(int)c.Status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonNode.Parse(text)!.AsObject();
        Assert.Equal((int)c.Status, (int)problem["status"]!);
        Assert.Contains(c.Expect, (string)problem["detail"]!);
        Assert.Equal(before, await fixture.Hub.CountsAsync());
    }
}

internal static class JsonObjectExtensions
{
    public static JsonObject Also(this JsonObject o, Action<JsonObject> edit)
    {
        edit(o);
        return o;
    }
}
