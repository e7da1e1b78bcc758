using System.Text.Json.Nodes;
using AngleSharp.Dom;
using Bunit;
using Bunit.TestDoubles;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Forms;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using MudBlazor.Services;
using Peft.Tests.Data;
using Peft.Tests.Hub;
using Peft.Core.Configs;
using Peft.Core.Models;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Web.Builder;
using Peft.Web.Components.Builder;
using Peft.Web.Infrastructure;

namespace Peft.Tests.Web;

/// <summary>
/// The job builder over the real catalog (seeded with the demo model and the bundled corpora): its estimate is the
/// count print_trainable_parameters gives, every bad field shows its key's problem next to it, data previews list bad
/// lines, and submitting hands over the exact POST /api/jobs body.
/// </summary>
public sealed class JobBuilderTests : MudComponentTest
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private readonly HubFactory _hub = new() { Seed = true };

    protected override void Configure()
    {
        _hub.Settings["Hub:ModelsDir"] = RepoFiles.Path("models");
        Ctx.Services.AddSingleton(_hub.Services.GetRequiredService<ServiceRunner>());
        Ctx.AddAuthorization().SetAuthorized("admin");
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _hub.Dispose();
    }

    private IRenderedComponent<JobBuilder> Render(Action<ComponentParameterCollectionBuilder<JobBuilder>>? parameters = null)
    {
        Ctx.Render<MudPopoverProvider>();
        var cut = Ctx.Render<JobBuilder>(p =>
        {
            p.Add(b => b.CheckDelayMs, 0);
            parameters?.Invoke(p);
        });
        // The first check (no adapter name yet) has rendered: nothing re-renders behind the test's back from here.
        cut.WaitForAssertion(() => Assert.Contains("adapter_name: adapter name is missing", Field(cut, "adapter_name").TextContent), Wait);
        return cut;
    }

    /// <summary>The block around a field (input, label, helper or error text).</summary>
    private static IElement Field(IRenderedComponent<JobBuilder> cut, string key)
    {
        var el = cut.Find($"[data-testid=field-{key}]");
        return el.Closest(".mud-input-control") ?? el;
    }

    /// <summary>Types into a field: text fields update on input (debounced), numeric ones on change.</summary>
    private static void Type(IRenderedComponent<JobBuilder> cut, string key, string value)
    {
        for (int attempt = 0; ; attempt++)
        {
            var input = Field(cut, key).QuerySelector("input")!;
            try
            {
                if (input.HasAttribute("blazor:onchange")) input.Change(value);
                else input.Input(value);
                return;
            }
            // A check finishing in the background re-rendered between finding the input and typing: find it again.
            catch (Bunit.Rendering.UnknownEventHandlerIdException) when (attempt < 3) { }
        }
    }

    private static async Task SelectAsync(IRenderedComponent<JobBuilder> cut, string label, string value)
    {
        var select = cut.FindComponents<MudSelect<string>>().Single(s => s.Instance.Label == label);
        await cut.InvokeAsync(() => select.Instance.ValueChanged.InvokeAsync(value));
    }

    [Fact]
    public void The_default_LoRA_estimate_is_print_trainable_parameters_of_the_demo_model()
    {
        var cut = Render(p => p.Add(b => b.OnSubmit, (JsonObject _) => { }));
        Type(cut, "adapter_name", "demo-lora");
        cut.WaitForAssertion(() => Assert.NotEmpty(cut.FindAll("[data-testid=estimate-trainable]")), Wait);

        // Llama q_proj (256→256) and v_proj (256→128, 4 KV heads of 32) at r = 8 in 6 layers: 6·(8·256+256·8 + 8·256+128·8) = 43,008.
        Assert.Equal("43,008", cut.Find("[data-testid=estimate-trainable]").TextContent.Trim());
        using var model = AutoModel.FromPretrained(RepoFiles.Path("models", "peft-demo"));
        using var peft = PeftModel.Create(model, new LoraConfig { R = 8, LoraAlpha = 16, LoraDropout = 0.05 });
        Assert.Equal(peft.TrainableParametersSummary(), cut.Find("[data-testid=estimate-summary]").TextContent.Trim());
        Assert.Equal("168.0 KiB", cut.Find("[data-testid=estimate-size]").TextContent.Trim());   // 43,008 float32 values

        var body = JsonNode.Parse(cut.Find("[data-testid=builder-json]").TextContent)!.AsObject();
        Assert.Equal("peft-demo", (string?)body["base_model"]);
        Assert.Equal("austen", (string?)body["dataset"]);
        Assert.Equal("demo-lora", (string?)body["adapter_name"]);
        Assert.Equal("lora", (string?)body["method"]);
        Assert.Equal(8, (int)body["r"]!);
        Assert.Equal(["q_proj", "v_proj"], body["target_modules"]!.AsArray().Select(t => (string)t!).ToArray());
        var command = cut.Find("[data-testid=builder-command]").TextContent;
        Assert.Contains("--model " + RepoFiles.Path("models", "peft-demo"), command);
        Assert.Contains("--target-modules q_proj,v_proj", command);
        Assert.Contains("--lora-alpha 16", command);
        Assert.False(cut.Find("[data-testid=builder-submit]").HasAttribute("disabled"));
    }

    [Fact]
    public void A_bad_rank_and_a_bad_adapter_name_are_shown_at_their_fields_and_block_submitting()
    {
        var cut = Render(p => p.Add(b => b.OnSubmit, (JsonObject _) => { }));
        Type(cut, "adapter_name", "bad name!");
        cut.WaitForAssertion(() => Assert.Contains("adapter_name: adapter name 'bad name!' may only hold", Field(cut, "adapter_name").TextContent), Wait);
        Assert.Empty(cut.FindAll("[data-testid=estimate-trainable]"));
        Assert.True(cut.Find("[data-testid=builder-submit]").HasAttribute("disabled"));

        Type(cut, "adapter_name", "ok-name");
        cut.WaitForAssertion(() => Assert.NotEmpty(cut.FindAll("[data-testid=estimate-trainable]")), Wait);
        Type(cut, "r", "0");
        cut.WaitForAssertion(() => Assert.Contains("r: must be a positive integer, got 0", Field(cut, "r").TextContent), Wait);
        Assert.DoesNotContain("adapter_name:", Field(cut, "adapter_name").TextContent);
        Assert.Empty(cut.FindAll("[data-testid=estimate-trainable]"));
        Assert.True(cut.Find("[data-testid=builder-submit]").HasAttribute("disabled"));
        Type(cut, "r", "4");
        cut.WaitForAssertion(() => Assert.Equal("21,504", cut.Find("[data-testid=estimate-trainable]").TextContent.Trim()), Wait);
    }

    [Fact]
    public async Task Switching_to_prefix_tuning_changes_the_knobs_the_body_and_the_estimate()
    {
        var cut = Render();
        Type(cut, "adapter_name", "demo-prefix");
        await SelectAsync(cut, "Method", "prefix");
        using var model = AutoModel.FromPretrained(RepoFiles.Path("models", "peft-demo"));
        using var peft = PeftModel.Create(model, new PrefixTuningConfig { NumVirtualTokens = 20, TaskType = TaskType.CausalLM });
        cut.WaitForAssertion(() => Assert.Equal(peft.TrainableParametersSummary(), cut.Find("[data-testid=estimate-summary]").TextContent.Trim()), Wait);
        Assert.Empty(cut.FindAll("[data-testid=field-r]"));
        var body = JsonNode.Parse(cut.Find("[data-testid=builder-json]").TextContent)!.AsObject();
        Assert.Equal(20, (int)body["num_virtual_tokens"]!);
        Assert.False(body.ContainsKey("r"));
        Assert.False(body.ContainsKey("target_modules"));
        Assert.Empty(cut.FindAll("[data-testid=builder-submit]"));   // no OnSubmit handler: nothing pretends to submit
    }

    [Fact]
    public async Task Quantising_the_base_to_nf4_lowers_the_memory_estimate()
    {
        var cut = Render();
        Type(cut, "adapter_name", "demo-qlora");
        cut.WaitForAssertion(() => Assert.NotEmpty(cut.FindAll("[data-testid=estimate-memory]")), Wait);
        var full = cut.Instance.LastCheck!.Estimate!;
        await SelectAsync(cut, "Quantise the base", "nf4");
        cut.WaitForAssertion(() => Assert.True(cut.Instance.LastCheck?.Estimate?.FrozenWeightBytes < full.FrozenWeightBytes), Wait);
        var q = cut.Instance.LastCheck!.Estimate!;
        Assert.Equal(full.Counts.TrainableParameters, q.Counts.TrainableParameters);
        Assert.Equal("nf4", (string?)JsonNode.Parse(cut.Find("[data-testid=builder-json]").TextContent)!["quantize"]);
    }

    [Fact]
    public void A_preset_sets_the_hyperparameters()
    {
        var cut = Render();
        cut.Find("[data-testid=preset-quick]").Click();
        cut.WaitForAssertion(() =>
        {
            var body = JsonNode.Parse(cut.Find("[data-testid=builder-json]").TextContent)!.AsObject();
            Assert.Equal(1.0, (double)body["epochs"]!);
            Assert.Equal(4, (int)body["r"]!);
            Assert.Equal(256, (int)body["max_length"]!);
        }, Wait);
    }

    [Fact]
    public void An_uploaded_file_shows_its_format_rows_and_every_bad_line_and_cannot_be_saved()
    {
        var cut = Render();
        var text = "{\"instruction\": \"Say hi\", \"output\": \"hi\"}\n{not json}\n{\"instruction\": \"Count\", \"output\": \"1 2 3\"}\n[1, 2]\n";
        cut.FindComponent<InputFile>().UploadFiles(InputFileContent.CreateFromText(text, "greetings.jsonl"));
        cut.WaitForAssertion(() => Assert.NotEmpty(cut.FindAll("[data-testid=dataset-preview]")), Wait);
        Assert.Equal("Instruction", cut.Find("[data-testid=dataset-format]").TextContent);
        var errors = cut.Find("[data-testid=dataset-errors]").QuerySelectorAll("li").Select(li => li.TextContent).ToList();
        Assert.Equal(2, errors.Count);
        Assert.StartsWith("greetings.jsonl:2: invalid JSON", errors[0]);
        Assert.StartsWith("greetings.jsonl:4: expected a JSON object", errors[1]);
        Assert.Equal(2, cut.Find("[data-testid=dataset-rows]").QuerySelectorAll("tbody tr").Length);
        Assert.True(cut.Find("[data-testid=dataset-save]").HasAttribute("disabled"));
    }

    [Fact]
    public void A_good_uploaded_file_becomes_a_dataset_and_is_selected()
    {
        var cut = Render();
        var text = "text,label\nlovely day,pos\nawful film,neg\n";
        cut.FindComponent<InputFile>().UploadFiles(InputFileContent.CreateFromText(text, "reviews.csv"));
        cut.WaitForAssertion(() => Assert.Equal("Classification", cut.Find("[data-testid=dataset-format]").TextContent), Wait);
        Assert.Empty(cut.FindAll("[data-testid=dataset-errors]"));
        cut.Find("[data-testid=dataset-save]").Click();
        cut.WaitForAssertion(() => Assert.Equal("reviews", (string?)JsonNode.Parse(cut.Find("[data-testid=builder-json]").TextContent)!["dataset"]), Wait);
    }

    [Fact]
    public async Task Submitting_raises_the_exact_body()
    {
        JsonObject? submitted = null;
        var cut = Render(p => p.Add(b => b.OnSubmit, (JsonObject body) => submitted = body));
        Type(cut, "adapter_name", "submit-me");
        cut.WaitForAssertion(() => Assert.False(cut.Find("[data-testid=builder-submit]").HasAttribute("disabled")), Wait);
        await cut.Find("[data-testid=builder-submit]").ClickAsync(new());
        cut.WaitForAssertion(() => Assert.NotNull(submitted), Wait);
        Assert.Equal(cut.Instance.Form.ToBody().ToJsonString(), submitted!.ToJsonString());
        Assert.Equal("submit-me", (string?)submitted["adapter_name"]);
    }

    [Fact]
    public async Task The_service_reports_every_mistyped_key_unknown_targets_and_non_adapter_methods()
    {
        await using var scope = _hub.Services.CreateAsyncScope();
        var service = scope.ServiceProvider.GetRequiredService<JobBuilderService>();
        var check = await service.CheckAsync(new JsonObject
        {
            ["base_model"] = "peft-demo", ["dataset"] = "austen", ["adapter_name"] = "x",
            ["r"] = "eight", ["lora_alpha"] = "big", ["target_modules"] = new JsonArray("q_proj", "nope"), ["data"] = "/etc/passwd",
        }, CancellationToken.None);
        Assert.Equal(["data", "lora_alpha", "r", "target_modules"], check.Problems.Select(p => p.Key).Order().ToArray());
        Assert.Contains("expected an integer, got 'eight'", check.ProblemOf("r"));
        Assert.Contains("'nope' matches no module of 'peft-demo'", check.ProblemOf("target_modules"));
        Assert.Contains("set by the hub", check.ProblemOf("data"));
        Assert.Null(check.Estimate);

        var full = await service.CheckAsync(new JsonObject { ["base_model"] = "peft-demo", ["dataset"] = "austen", ["adapter_name"] = "x", ["method"] = "full" }, CancellationToken.None);
        Assert.Contains("registers adapters", full.ProblemOf("method"));
        var missing = await service.CheckAsync(new JsonObject { ["base_model"] = "no-such-base", ["adapter_name"] = "x" }, CancellationToken.None);
        Assert.Contains("not found", missing.ProblemOf("base_model"));
        Assert.Equal("choose or upload a dataset", missing.ProblemOf("dataset"));
    }
}
