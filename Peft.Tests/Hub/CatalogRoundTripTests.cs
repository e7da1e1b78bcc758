using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Peft.Storage;
using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;

namespace Peft.Tests.Hub;

/// <summary>One hub with every golden base model registered, shared by the round-trip cases.</summary>
public class GoldenHubFixture : IAsyncLifetime
{
    private readonly DatabaseProvider _provider;

    public GoldenHubFixture() : this(DatabaseProvider.Sqlite) { }

    protected GoldenHubFixture(DatabaseProvider provider) => _provider = provider;

    public HubFactory Hub { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    public static readonly string[] Bases = ["llama_base", "gpt2_base", "opt_base", "bloom_base", "t5_base", "mt5_base", "bert_base", "qwen2_base", "roberta_base"];

    public async Task InitializeAsync()
    {
        if (!PostgresTestDatabase.Usable(_provider)) return; // its tests are skipped
        Hub = new HubFactory(provider: _provider);
        Client = Hub.CreateClient();
        foreach (var b in Bases) await Hub.RegisterGoldenBaseAsync(Client, b);
    }

    public Task DisposeAsync()
    {
        Client?.Dispose();
        Hub?.Dispose();
        return Task.CompletedTask;
    }
}

/// <summary>
/// Upload → download of every LoRA-family, IA³ and prompt-learning adapter in the golden set: the files come back
/// byte-identical with the same sha256, and the downloaded zip loads in the engine with PEFT's logits.
/// </summary>
public class CatalogRoundTripTests(GoldenHubFixture fixture) : IClassFixture<GoldenHubFixture>
{
    private static readonly HashSet<string> Methods = ["LORA", "ADALORA", "IA3", "PREFIX_TUNING", "PROMPT_TUNING", "P_TUNING"];

    /// <summary>Every golden adapter case (a folder with adapter_config.json and logits) of those methods.</summary>
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var c in CaseNames()) data.Add(c);
        return data;
    }

    private static List<string> CaseNames()
    {
        var data = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories(GoldenData.Root).Order(StringComparer.Ordinal))
        {
            var config = Path.Combine(dir, "adapter_config.json");
            if (!File.Exists(config) || !File.Exists(Path.Combine(dir, "expected.safetensors"))) continue;
            var type = (string?)JsonNode.Parse(File.ReadAllText(config))!["peft_type"];
            if (type is not null && Methods.Contains(type)) data.Add(Path.GetFileName(dir));
        }
        return data;
    }

    [Fact]
    public void TheGoldenSetHasEveryMethodFamily()
    {
        var cases = CaseNames();
        Assert.True(cases.Count >= 40, $"{cases.Count} cases");
        foreach (var suffix in new[] { "_lora", "_lora_dora", "_lora_rslora", "_adalora", "_adalora_allocated", "_ia3", "_prefix_tuning", "_prefix_tuning_proj", "_prompt_tuning", "_p_tuning" })
            Assert.Contains(cases, c => c.EndsWith(suffix, StringComparison.Ordinal));
    }

    [Theory, MemberData(nameof(Cases))]
    public Task UploadDownloadIsByteIdenticalAndLoadsWithGoldenLogits(string caseName) => RoundTripAsync(fixture, caseName);

    internal static async Task RoundTripAsync(GoldenHubFixture fixture, string caseName)
    {
        var dir = GoldenData.Dir(caseName);
        var baseName = (string)JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!["base_model_name_or_path"]!;
        var client = fixture.Client;
        var name = caseName.Replace('_', '-');

        var response = await client.PostAsync($"/api/adapters/{name}/versions", HubFactory.AdapterForm(dir));
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        var version = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal("ready", (string)version["state"]!);
        Assert.Equal(baseName, (string)version["baseModel"]!);

        string[] files = ["adapter_config.json", "adapter_model.safetensors"];
        foreach (var f in files)
        {
            var original = await File.ReadAllBytesAsync(Path.Combine(dir, f));
            var sha = Convert.ToHexStringLower(SHA256.HashData(original));
            Assert.Equal(sha, (string)version["files"]!.AsArray().Single(x => (string)x!["fileName"]! == f)!["sha256"]!);
            var single = await client.GetAsync($"/api/adapters/{name}/versions/1/download?file={f}");
            single.EnsureSuccessStatusCode();
            Assert.Equal($"\"{sha}\"", single.Headers.ETag?.Tag);
            Assert.Equal(original, await single.Content.ReadAsByteArrayAsync());
        }

        using var tmp = new TempDir();
        var zipResponse = await client.GetAsync($"/api/adapters/{name}/versions/1/download");
        zipResponse.EnsureSuccessStatusCode();
        var zipBytes = await zipResponse.Content.ReadAsByteArrayAsync();
        Assert.Equal($"\"{Convert.ToHexStringLower(SHA256.HashData(zipBytes))}\"", zipResponse.Headers.ETag?.Tag);
        ZipFile.ExtractToDirectory(new MemoryStream(zipBytes), tmp.Path);
        foreach (var f in files)
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(dir, f)), await File.ReadAllBytesAsync(tmp[f]));
        var card = await File.ReadAllTextAsync(tmp["README.md"]);
        Assert.Contains($"base_model: {baseName}\n", card);
        Assert.Contains("library_name: peft\n", card);

        // The downloaded folder is a working adapter: PEFT's logits from the engine.
        using var scope = torch.NewDisposeScope();
        var model = AutoModel.FromPretrained(GoldenData.Dir(baseName));
        model.eval();
        using var peft = PeftModel.FromPretrained(model, tmp.Path);
        var expected = GoldenData.Expected(caseName);
        using var noGrad = torch.no_grad();
        using var output = peft.Forward(GoldenAdapterChecks.Args(expected));
        GoldenData.AssertClose(expected["logits"], output.Logits, GoldenAdapterChecks.Tolerance(caseName, expected["logits"]), $"{caseName} logits after the round trip");
    }
}
