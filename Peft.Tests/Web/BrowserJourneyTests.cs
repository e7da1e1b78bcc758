using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Peft.Tests.Hub;
using Peft.Tests.Jobs;
using Peft.Tests.Support;
using static Microsoft.Playwright.Assertions;

namespace Peft.Tests.Web;

/// <summary>
/// The whole browser journey against the real host on loopback: a Hangfire server in the host training the demo model
/// in real child processes (the fast settings of <see cref="JobsTestHub"/>), the catalog on SQLite, serving from the
/// catalog, and Debian's chromium. Sign in → upload the ledger rows → build and submit a LoRA job → its page reaches
/// 100 % → the version is in the catalog → promote it → the playground streams it next to the base → download its zip;
/// then clone the job and compare the two versions' sample outputs.
/// </summary>
public sealed class BrowserJourneyTests : IAsyncLifetime
{
    private const string Adapter = "journey";
    private static readonly TimeSpan Training = TimeSpan.FromMinutes(5);
    private readonly TempDir _corpora = new();
    private readonly TempDir _served = new();
    private readonly TempDir _downloads = new();
    private readonly HubFactory _hub = new() { Seed = true };
    private BrowserSession _session = null!;

    public async Task InitializeAsync()
    {
        foreach (var (k, v) in JobsTestHub.FastJobSettings(_corpora.Path)) _hub.Settings[k] = v;
        _hub.Settings["Serving:AdaptersPath"] = _served.Path;
        _session = await BrowserSession.StartAsync(_hub);
    }

    public async Task DisposeAsync()
    {
        await _session.DisposeAsync();
        _hub.Dispose();
        _corpora.Dispose();
        _served.Dispose();
        _downloads.Dispose();
    }

    private static ILocator Field(IPage page, string key) => page.Locator($"input[data-testid=field-{key}], [data-testid=field-{key}] input");

    private static async Task SetAsync(IPage page, string key, string value)
    {
        var field = Field(page, key);
        await field.FillAsync(value);
        await field.PressAsync("Tab");
    }

    private static async Task<IPage> OpenAsync(IBrowserContext context, string path)
    {
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(30_000);
        await page.GotoAsync(path);
        await BrowserSession.InteractiveAsync(page);
        return page;
    }

    [Fact]
    public async Task Upload_train_watch_promote_try_and_download_a_lora_version()
    {
        var context = await _session.Browser.NewContextAsync(new() { BaseURL = _session.Url, ViewportSize = new() { Width = 1280, Height = 900 }, AcceptDownloads = true });
        SetDefaultExpectTimeout(30_000);

        // Sign in, landing on the job builder.
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(30_000);
        await page.GotoAsync("/jobs/new");
        await page.FillAsync("#name", "admin");
        await page.FillAsync("#password", HubFactory.AdminPassword);
        await page.ClickAsync("button[type=submit]");
        await Expect(page).ToHaveURLAsync(_session.Url + "/jobs/new");
        await BrowserSession.InteractiveAsync(page);

        // Upload the ledger rows as JSONL: preview, detected format, saved and picked as the job's dataset.
        await page.GetByText("Upload a data file").ClickAsync();
        var rows = string.Join("\n", JobsTestHub.LedgerRows(1, 40)) + "\n";
        var fileInput = page.Locator("input[data-testid=dataset-input]");
        await Expect(fileInput).ToBeVisibleAsync();
        await BrowserSession.ChooseFileAsync(fileInput, new FilePayload
        {
            Name = "ledger.jsonl", MimeType = "application/octet-stream", Buffer = System.Text.Encoding.UTF8.GetBytes(rows),
        }, page.GetByTestId("dataset-preview"), "ledger.jsonl: 40 rows");
        await Expect(page.GetByTestId("dataset-format")).Not.ToHaveTextAsync("unknown");
        await Expect(page.GetByTestId("dataset-errors")).ToHaveCountAsync(0);
        await Expect(page.GetByTestId("dataset-rows")).ToContainTextAsync("Ledger entry: received");
        var datasetName = page.Locator("input[data-testid=dataset-name], [data-testid=dataset-name] input");
        await datasetName.FillAsync("ledger-journey");
        await datasetName.PressAsync("Tab");
        await page.GetByTestId("dataset-save").ClickAsync();
        await Expect(page.GetByTestId("builder-json")).ToContainTextAsync(new Regex("\"dataset\":\\s*\"ledger-journey\""));

        // A small LoRA job: 8 steps of 2 rows of 32 tokens.
        await SetAsync(page, "adapter_name", Adapter);
        await SetAsync(page, "batch_size", "2");
        await SetAsync(page, "max_length", "32");
        await SetAsync(page, "learning_rate", "0.005");
        await page.GetByTestId("advanced-toggle").ClickAsync();
        await SetAsync(page, "max_steps", "8");
        await SetAsync(page, "validation_split", "0.2");
        var json = page.GetByTestId("builder-json");
        await Expect(json).ToContainTextAsync(new Regex("\"max_steps\":\\s*8"));
        await Expect(json).ToContainTextAsync(new Regex("\"batch_size\":\\s*2"));
        await Expect(json).ToContainTextAsync(new Regex("\"max_length\":\\s*32"));
        await Expect(page.GetByTestId("estimate-trainable")).ToHaveTextAsync("43,008", new() { Timeout = 60_000 });
        await _session.ShotAsync(page, "20-journey-builder");
        await page.GetByTestId("builder-submit").ClickAsync();
        await Expect(page.GetByTestId("job-queued")).ToContainTextAsync(Adapter);
        string jobPath = (await page.GetByTestId("job-queued-link").GetAttributeAsync("href"))!;
        Assert.Matches("^jobs/[0-9]+$", jobPath);
        long jobId = long.Parse(jobPath["jobs/".Length..], System.Globalization.CultureInfo.InvariantCulture);

        // The job page, opened in a new tab after closing the builder's: the job does not depend on any tab.
        await page.CloseAsync();
        page = await OpenAsync(context, "/" + jobPath);
        await Expect(page.GetByTestId("job-percent")).ToHaveTextAsync("100 %", new() { Timeout = (float)Training.TotalMilliseconds });
        await Expect(page.GetByTestId("job-state")).ToHaveTextAsync("succeeded", new() { Timeout = 60_000 });
        await Expect(page.GetByTestId("job-steps")).ToHaveTextAsync("step 8 of 8");
        await Expect(page.GetByTestId("job-result")).ToContainTextAsync($"{Adapter}@1");
        await Expect(page.GetByTestId("job-log")).ToContainTextAsync("step 8/8");
        await Expect(page.GetByTestId("job-log")).ToContainTextAsync("state → succeeded");
        await Expect(page.Locator("[data-testid=chart-loss] svg").First).ToBeVisibleAsync();
        await Expect(page.Locator("[data-testid=chart-lr] svg").First).ToBeVisibleAsync();
        await Expect(page.Locator("[data-testid=chart-grad-norm] svg").First).ToBeVisibleAsync();
        await Expect(page.GetByTestId("job-evals")).ToContainTextAsync("eval_loss");
        await _session.ShotAsync(page, "21-job-detail");

        // The jobs list shows it finished; a filter that matches nothing says so.
        await page.GotoAsync("/jobs");
        await BrowserSession.InteractiveAsync(page);
        var row = page.Locator("tr").Filter(new() { Has = page.GetByTestId($"job-link-{jobId}") });
        await Expect(row.GetByTestId("job-state")).ToHaveTextAsync("succeeded");
        await Expect(row).ToContainTextAsync("step 8 of 8");
        await _session.ShotAsync(page, "22-jobs-first");
        var adapterFilter = page.Locator("input[data-testid=filter-adapter], [data-testid=filter-adapter] input");
        await adapterFilter.FillAsync("no-such-adapter");
        await Expect(page.GetByTestId("no-jobs")).ToBeVisibleAsync();

        // The catalog has version 1; promote it to production through the confirmation dialog.
        await page.GotoAsync($"/adapters/{Adapter}");
        await BrowserSession.InteractiveAsync(page);
        await Expect(page.GetByTestId("version-table")).ToContainTextAsync("v1");
        await page.GetByTestId("promote-v1").ClickAsync();
        await Expect(page.GetByTestId("alias-move-summary")).ToContainTextAsync("Create alias production");
        await page.GetByTestId("alias-confirm").ClickAsync();
        await Expect(page.GetByTestId("alias-production")).ToContainTextAsync("production → v1");
        await _session.ShotAsync(page, "23-journey-promoted");

        // The playground streams journey@production next to the base; greedy, so the API gives the same text.
        await page.GotoAsync("/playground");
        await BrowserSession.InteractiveAsync(page);
        await Expect(page.GetByTestId("playground-base")).ToHaveTextAsync("peft-demo", new() { Timeout = 60_000 });
        var temperature = page.Locator("input[data-testid=temperature], [data-testid=temperature] input");
        await temperature.FillAsync("0");
        await temperature.PressAsync("Tab");
        const string prompt = "Ledger entry: received";
        await page.Locator("[data-testid=prompt] textarea, textarea[data-testid=prompt]").FillAsync(prompt);
        var refs = page.Locator("[data-testid=pick-refs] input, input[data-testid=pick-refs]");
        await refs.FillAsync($"{Adapter}@production");
        await refs.PressAsync("Tab");
        await page.GetByTestId("run").ClickAsync();
        var baseColumn = page.GetByTestId("answer-0");
        var production = page.Locator("div[data-testid^=answer-]").Filter(new() { HasText = $"{Adapter}@production" });
        await Expect(baseColumn).ToContainTextAsync("peft-demo");
        await Expect(baseColumn.GetByTestId("answer-state")).ToContainTextAsync("finish:", new() { Timeout = 60_000 });
        await Expect(production.GetByTestId("answer-state")).ToContainTextAsync("finish:", new() { Timeout = 60_000 });
        string streamed = await production.GetByTestId("answer-text").InnerTextAsync();
        await _session.ShotAsync(page, "24-journey-playground");
        using var api = _hub.CreateClient();
        var completion = await api.PostAsJsonAsync("/v1/completions", new { model = $"{Adapter}@production", prompt, max_tokens = 32, temperature = 0.0, seed = 42 });
        Assert.Equal(HttpStatusCode.OK, completion.StatusCode);
        string expected = (string)(await completion.Content.ReadFromJsonAsync<JsonObject>())!["choices"]![0]!["text"]!;
        Assert.NotEmpty(expected.Trim());
        Assert.Equal(expected.Trim(), streamed.Trim());

        // The version's zip (HF layout): the adapter config of this LoRA job and its weights.
        await page.GotoAsync($"/adapters/{Adapter}");
        await BrowserSession.InteractiveAsync(page);
        var download = await page.RunAndWaitForDownloadAsync(() => page.GetByTestId("download-v1").ClickAsync());
        string zipPath = Path.Combine(_downloads.Path, "v1.zip");
        await download.SaveAsAsync(zipPath);
        using (var zip = ZipFile.OpenRead(zipPath))
        {
            var names = zip.Entries.Select(e => e.Name).ToList();
            Assert.Contains("adapter_config.json", names);
            Assert.Contains("adapter_model.safetensors", names);
            Assert.True(zip.Entries.First(e => e.Name == "adapter_model.safetensors").Length > 1000);
            using var reader = new StreamReader(zip.Entries.First(e => e.Name == "adapter_config.json").Open());
            var config = JsonNode.Parse(await reader.ReadToEndAsync())!;
            Assert.Equal("LORA", (string?)config["peft_type"]);
            Assert.Equal(8, (int)config["r"]!);
        }

        // Clone the job with another seed: version 2; compare the two versions with sample outputs side by side.
        await page.GotoAsync("/" + jobPath);
        await BrowserSession.InteractiveAsync(page);
        await page.GetByTestId("job-clone").ClickAsync();
        var seed = page.Locator("input[data-testid=clone-seed], [data-testid=clone-seed] input");
        await Expect(seed).ToHaveValueAsync("42");
        await seed.FillAsync("7");
        await seed.PressAsync("Tab");
        await page.GetByTestId("clone-confirm").ClickAsync();
        await Expect(page).Not.ToHaveURLAsync(_session.Url + "/" + jobPath);
        await Expect(page.GetByTestId("job-percent")).ToHaveTextAsync("100 %", new() { Timeout = (float)Training.TotalMilliseconds });
        await Expect(page.GetByTestId("job-result")).ToContainTextAsync($"{Adapter}@2", new() { Timeout = 60_000 });
        await page.GotoAsync($"/adapters/{Adapter}");
        await BrowserSession.InteractiveAsync(page);
        await Expect(page.GetByTestId("version-table")).ToContainTextAsync("v2");
        await page.GetByTestId("compare").ClickAsync();
        await page.Locator("[data-testid=compare-prompt] textarea, textarea[data-testid=compare-prompt]").FillAsync(prompt);
        await page.GetByTestId("compare-generate").ClickAsync();
        foreach (var slot in new[] { "a", "b" })
            await Expect(page.GetByTestId($"compare-sample-{slot}").GetByTestId("sample-state")).ToContainTextAsync("finish:", new() { Timeout = 60_000 });
        var samples = new[] { "a", "b" }.Select(s => page.GetByTestId($"compare-sample-{s}")).ToList();
        var labels = await Task.WhenAll(samples.Select(s => s.Locator("b").First.InnerTextAsync()));
        Assert.Equal([$"{Adapter}@1", $"{Adapter}@2"], labels.Order());
        var v1 = samples[Array.IndexOf(labels, $"{Adapter}@1")];
        Assert.Equal(expected.Trim(), (await v1.GetByTestId("sample-text").InnerTextAsync()).Trim());
        await page.EvaluateAsync("window.scrollTo(0, 0)");   // the fixed app bar otherwise lands mid-page in a full-page shot
        await _session.ShotAsync(page, "25-compare-samples");

        // Both jobs in the list; the job page in the dark theme on a narrow window.
        await page.GotoAsync("/jobs");
        await BrowserSession.InteractiveAsync(page);
        await Expect(page.GetByTestId("jobs-table").GetByTestId("job-state")).ToHaveTextAsync(["succeeded", "succeeded"]);
        await _session.ShotAsync(page, "22-jobs");
        await page.GotoAsync("/" + jobPath);
        await BrowserSession.InteractiveAsync(page);
        await page.GetByTestId("theme-toggle").ClickAsync();
        await Expect(page.GetByTestId("theme-toggle")).ToHaveAttributeAsync("aria-label", "Light theme");
        await page.SetViewportSizeAsync(420, 860);
        await Expect(page.GetByTestId("job-percent")).ToHaveTextAsync("100 %");
        await _session.ShotAsync(page, "26-job-dark-narrow");
        await context.CloseAsync();
    }
}
