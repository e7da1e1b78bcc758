using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Peft.Core;
using Peft.Storage.Services;
using Peft.Tests.Support;
using Peft.Web.Playground;

namespace Peft.Tests.Web;

/// <summary>
/// The playground's classification path on the real host: which targets answer with labels (an encoder base and a
/// SEQ_CLS adapter for it, not a generation adapter or the generation base), and that its label probabilities are
/// those <c>/v1/classify</c> returns for the same input.
/// </summary>
public sealed class PlaygroundClassificationTests(ServingApiFixture fx) : IClassFixture<ServingApiFixture>
{
    private static async Task RegisterAsync(IServiceProvider services, string adapter, string folder, string baseModel, string baseFolder)
    {
        await using var scope = services.CreateAsyncScope();
        var bases = scope.ServiceProvider.GetRequiredService<BaseModelService>();
        if ((await bases.ListAsync(default)).All(b => b.Name != baseModel))
            await bases.RegisterAsync(baseModel, baseFolder, null, "test", default, allowOutsideModelsDir: true);
        await scope.ServiceProvider.GetRequiredService<AdapterCatalog>().RegisterAsync(adapter, Path.Combine(folder, "adapter_config.json"),
            Path.Combine(folder, "adapter_model.safetensors"), baseModel, new VersionProvenance { CreatedBy = "test" }, default);
    }

    [Fact]
    public async Task A_sequence_classification_adapter_answers_with_the_label_probabilities_of_v1_classify()
    {
        var (client, _, services) = fx.StartWithServices(("Serving:Encoders:0:Name", "bert_base"), ("Serving:Encoders:0:Path", GoldenData.Dir("bert_base")));
        await RegisterAsync(services, "bert-cls", GoldenData.Dir("bert_lora"), "bert_base", GoldenData.Dir("bert_base"));
        await RegisterAsync(services, "demo-lora", Path.Combine(fx.Adapters.Path, "a", "1"), "peft-demo", ServingApiFixture.DemoModelDir());
        var playground = services.GetRequiredService<PlaygroundService>();
        var status = await playground.StatusAsync(default);

        Assert.Equal(["bert_base"], await playground.EncoderBasesAsync(default));
        Assert.True(await playground.ClassifiesAsync(new PlaygroundTarget("bert-cls", "bert-cls", null), default));
        Assert.True(await playground.ClassifiesAsync(new PlaygroundTarget("bert_base", "bert_base", null), default));
        Assert.False(await playground.ClassifiesAsync(new PlaygroundTarget("demo-lora", "demo-lora", null), default));
        Assert.False(await playground.ClassifiesAsync(PlaygroundTarget.Base(status.ModelName!), default));
        Assert.False(await playground.ClassifiesAsync(new PlaygroundTarget("nope", "nope", null), default));

        // The golden case has no tokenizer: the playground takes token ids as a JSON array, as /v1/classify does.
        var golden = GoldenData.Expected("bert_lora");
        int length = (int)golden["attention_mask"][0].sum().item<long>();
        int[] ids = golden["input_ids"][0].data<long>().Take(length).Select(x => (int)x).ToArray();
        var labels = await playground.ClassifyAsync("bert-cls", "[" + string.Join(",", ids) + "]", default);
        var response = await client.PostAsJsonAsync("/v1/classify", new { model = "bert-cls", input = ids });
        var expected = (await response.Content.ReadFromJsonAsync<JsonObject>())!["data"]![0]!["labels"]!.AsObject();
        Assert.Equal(expected.Count, labels.Count);
        Assert.True(expected.Count >= 2);
        foreach (var l in labels) Assert.Equal((double)expected[l.Label]!, l.Probability, 5);
        Assert.Equal(labels.OrderByDescending(l => l.Probability).Select(l => l.Label), labels.Select(l => l.Label));
        Assert.Equal(1.0, labels.Sum(l => l.Probability), 4);

        // Text needs a tokenizer: a sentence saying so, not a failure.
        var noTokenizer = await Assert.ThrowsAsync<PeftUserException>(() => playground.ClassifyAsync("bert-cls", "a sentence", default));
        Assert.Contains("tokenizer", noTokenizer.Message);
        var badIds = await Assert.ThrowsAsync<PeftUserException>(() => playground.ClassifyAsync("bert-cls", "[1, 2", default));
        Assert.StartsWith("prompt:", badIds.Message);
    }
}
