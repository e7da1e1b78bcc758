using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Playwright;
using Peft.Tests.Data;
using Peft.Tests.Hub;
using static Microsoft.Playwright.Assertions;

namespace Peft.Tests.Web;

/// <summary>
/// The job builder, the playground and the dashboard in Debian's chromium against the real host on loopback, serving
/// the demo model with two LoRA adapters (<see cref="ServingApiFixture"/>'s a and b). Screenshots go where
/// <see cref="BrowserTests"/> puts its own.
/// </summary>
public sealed class BrowserAppTests : IAsyncLifetime
{
    private readonly ServingApiFixture _adapters = new();
    private readonly HubFactory _hub = new() { Seed = true };
    private BrowserSession _session = null!;

    public async Task InitializeAsync()
    {
        _hub.Settings["Hub:ModelsDir"] = RepoFiles.Path("models");
        _hub.Settings["Serving:AdaptersPath"] = _adapters.Adapters.Path;
        _session = await BrowserSession.StartAsync(_hub);
    }

    public async Task DisposeAsync()
    {
        await _session.DisposeAsync();
        _hub.Dispose();
        _adapters.Dispose();
    }

    private async Task<IPage> SignInAsync(string path)
    {
        var context = await _session.Browser.NewContextAsync(new() { BaseURL = _session.Url, ViewportSize = new() { Width = 1280, Height = 900 } });
        var page = await context.NewPageAsync();
        await page.GotoAsync(path);
        await page.FillAsync("#name", "admin");
        await page.FillAsync("#password", HubFactory.AdminPassword);
        await page.ClickAsync("button[type=submit]");
        await Expect(page).ToHaveURLAsync(_session.Url + path, new() { Timeout = 30_000 });
        await BrowserSession.InteractiveAsync(page);
        return page;
    }

    [Fact]
    public async Task The_playground_streams_the_base_and_an_adapter_side_by_side()
    {
        var page = await SignInAsync("/playground");
        await Expect(page.GetByTestId("playground-base")).ToHaveTextAsync("peft-demo", new() { Timeout = 60_000 });
        await Expect(page.Locator("input[data-testid=pick-a], [data-testid=pick-a] input")).ToBeCheckedAsync();
        // Greedy decoding, so the comparison below does not depend on how the two sequences were batched.
        var temperature = page.Locator("input[data-testid=temperature], [data-testid=temperature] input");
        await temperature.FillAsync("0");
        await temperature.PressAsync("Tab");
        const string prompt = "Once upon a time";
        await page.Locator("[data-testid=prompt] textarea, textarea[data-testid=prompt]").FillAsync(prompt);
        await page.GetByTestId("run").ClickAsync();

        var baseAnswer = page.GetByTestId("answer-0");
        var adapterAnswer = page.GetByTestId("answer-1");
        await Expect(baseAnswer.GetByTestId("answer-state")).ToContainTextAsync("finish:", new() { Timeout = 60_000 });
        await Expect(adapterAnswer.GetByTestId("answer-state")).ToContainTextAsync("finish:", new() { Timeout = 60_000 });
        await Expect(adapterAnswer).ToContainTextAsync("a");
        var streamedBase = await baseAnswer.GetByTestId("answer-text").InnerTextAsync();
        var streamedAdapter = await adapterAnswer.GetByTestId("answer-text").InnerTextAsync();
        await _session.ShotAsync(page, "10-playground");

        // The same request through /v1/completions (same seed and settings) gives the same text: the page streamed the real answer.
        using var api = _hub.CreateClient();
        foreach (var (model, streamed) in new[] { ("peft-demo", streamedBase), ("a", streamedAdapter) })
        {
            var response = await api.PostAsJsonAsync("/v1/completions", new { model, prompt, max_tokens = 32, temperature = 0.0, seed = 42 });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var text = (string)(await response.Content.ReadFromJsonAsync<JsonObject>())!["choices"]![0]!["text"]!;
            Assert.Equal(text.Trim(), streamed.Trim());
            Assert.NotEmpty(text.Trim());
        }
        Assert.NotEqual(streamedBase, streamedAdapter);

        // An unknown adapter is a readable message in its column, not a broken page.
        await page.Locator("[data-testid=pick-refs] input, input[data-testid=pick-refs]").FillAsync("no-such-adapter");
        await page.GetByTestId("run").ClickAsync();
        await Expect(page.GetByTestId("answer-error")).ToContainTextAsync("no-such-adapter", new() { Timeout = 30_000 });
        await page.SetViewportSizeAsync(420, 860);
        await _session.ShotAsync(page, "11-playground-narrow");
    }

    [Fact]
    public async Task The_builder_shows_the_estimate_and_the_json_of_a_lora_job()
    {
        var page = await SignInAsync("/jobs/new");
        var name = page.Locator("input[data-testid=field-adapter_name], [data-testid=field-adapter_name] input");
        await name.FillAsync("e2e-job");
        await name.PressAsync("Tab");
        // Llama q_proj + v_proj at r = 8 on the demo model: 43,008 trainable parameters (see JobBuilderTests).
        await Expect(page.GetByTestId("estimate-trainable")).ToHaveTextAsync("43,008", new() { Timeout = 60_000 });
        await Expect(page.GetByTestId("estimate-summary")).ToContainTextAsync("trainable params: 43,008 || all params:");
        var body = JsonNode.Parse(await page.GetByTestId("builder-json").InnerTextAsync())!.AsObject();
        Assert.Equal("e2e-job", (string?)body["adapter_name"]);
        Assert.Equal("lora", (string?)body["method"]);
        Assert.Equal("peft-demo", (string?)body["base_model"]);
        await Expect(page.GetByTestId("builder-command")).ToContainTextAsync("--out e2e-job");
        await _session.ShotAsync(page, "12-job-builder");

        // Submitting hands the same body to the jobs service (no Hangfire server runs in this host: it stays queued).
        await page.GetByTestId("builder-submit").ClickAsync();
        await Expect(page.GetByTestId("job-queued")).ToContainTextAsync("e2e-job", new() { Timeout = 30_000 });
        await Expect(page.GetByTestId("job-queued")).ToContainTextAsync("queued");

        // A bad rank is named at its field, and the estimate goes away until it is fixed.
        var rank = page.Locator("input[data-testid=field-r], [data-testid=field-r] input");
        await rank.FillAsync("0");
        await rank.PressAsync("Tab");
        await Expect(page.Locator(".mud-input-error").Filter(new() { HasText = "r: must be a positive integer, got 0" }).First).ToBeVisibleAsync(new() { Timeout = 30_000 });
        await Expect(page.GetByTestId("estimate-trainable")).ToHaveCountAsync(0);
        await _session.ShotAsync(page, "13-job-builder-problem");
    }

    [Fact]
    public async Task The_dashboard_shows_serving_status_and_the_theme_survives_a_reload()
    {
        var page = await SignInAsync("/");
        await Expect(page.GetByTestId("served-adapters")).ToContainTextAsync("a@1", new() { Timeout = 60_000 });
        await Expect(page.GetByTestId("serving-memory")).ToContainTextAsync("device");
        // This host runs no Hangfire server (Jobs:RunServer is off in tests): the panel says so instead of failing.
        await Expect(page.GetByTestId("worker-state")).ToContainTextAsync("no live Hangfire server serves the cpu queue");
        await _session.ShotAsync(page, "14-dashboard-serving");

        await page.GetByTestId("theme-toggle").ClickAsync();
        await Expect(page.GetByTestId("theme-toggle")).ToHaveAttributeAsync("aria-label", "Light theme");
        await page.ReloadAsync();
        await BrowserSession.InteractiveAsync(page);
        await Expect(page.GetByTestId("theme-toggle")).ToHaveAttributeAsync("aria-label", "Light theme", new() { Timeout = 30_000 });
        await page.SetViewportSizeAsync(420, 860);
        await _session.ShotAsync(page, "15-dashboard-dark-narrow");
    }
}
