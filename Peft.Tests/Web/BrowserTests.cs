using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.Playwright;
using Peft.Tests.Hub;
using static Microsoft.Playwright.Assertions;

namespace Peft.Tests.Web;

/// <summary>
/// The browser app in Debian's chromium against the real host on a loopback socket: sign in, upload (refused, then
/// accepted), promote and roll back with the confirmation dialog, compare, download the zip, API keys, theme and a
/// narrow window. Screenshots of each page go to bin/.../screenshots (or $PEFT_SCREENSHOTS).
/// </summary>
public sealed class BrowserTests : IAsyncLifetime
{
    private readonly HubFactory _hub = new();
    private BrowserSession _session = null!;

    public async Task InitializeAsync()
    {
        _session = await BrowserSession.StartAsync(_hub);
    }

    public async Task DisposeAsync()
    {
        await _session.DisposeAsync();
        _hub.Dispose();
    }

    [Fact]
    public async Task Sign_in_upload_promote_roll_back_compare_download_and_api_keys()
    {
        using (var admin = _hub.CreateClient()) await _hub.RegisterGoldenBaseAsync(admin, "llama_base");
        var context = await _session.Browser.NewContextAsync(new() { BaseURL = _session.Url, AcceptDownloads = true, ViewportSize = new() { Width = 1280, Height = 900 } });
        var page = await context.NewPageAsync();

        // Signing in: an unauthenticated visit goes to the login page and comes back.
        await page.GotoAsync("/adapters");
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/login\\?ReturnUrl=%2Fadapters"));
        await page.FillAsync("#name", "admin");
        await page.FillAsync("#password", "wrong-password");
        await page.ClickAsync("button[type=submit]");
        await Expect(page.GetByTestId("login-error")).ToContainTextAsync("Wrong user name or password");
        await _session.ShotAsync(page, "01-sign-in");
        await page.FillAsync("#name", "admin");
        await page.FillAsync("#password", HubFactory.AdminPassword);
        await page.ClickAsync("button[type=submit]");
        await Expect(page).ToHaveURLAsync(_session.Url + "/adapters");
        await BrowserSession.InteractiveAsync(page);
        await Expect(page.GetByTestId("user-name")).ToContainTextAsync("admin");

        // Upload: a refused zip lists its problems; a good one becomes v1, the next v2.
        await page.GetByRole(AriaRole.Link, new() { Name = "Upload adapter", Exact = true }).ClickAsync();
        await Expect(page.GetByTestId("upload-submit")).ToBeVisibleAsync();
        await page.Locator("input[data-testid=upload-name], [data-testid=upload-name] input").FillAsync("e2e-lora");
        await BrowserSession.ChooseFileAsync(page.Locator("[data-testid=upload-input]"), new FilePayload
        {
            Name = "bad.zip", MimeType = "application/zip", Buffer = BadZip(),
        }, page.GetByTestId("upload-file"), "bad.zip");
        await page.GetByTestId("upload-submit").ClickAsync();
        await Expect(page.GetByTestId("upload-problems")).ToContainTextAsync("is not part of an adapter");
        await _session.ShotAsync(page, "02-upload-problems");
        await BrowserSession.ChooseFileAsync(page.Locator("[data-testid=upload-input]"), new FilePayload
        {
            Name = "llama_lora.zip", MimeType = "application/zip", Buffer = UploadPageTests.GoldenZip("llama_lora"),
        }, page.GetByTestId("upload-file"), "llama_lora.zip");
        await page.GetByTestId("upload-submit").ClickAsync();
        await Expect(page).ToHaveURLAsync(_session.Url + "/adapters/e2e-lora", new() { Timeout = 30_000 });
        await Expect(page.GetByTestId("version-table")).ToContainTextAsync("v1");

        await page.GetByRole(AriaRole.Link, new() { Name = "Upload adapter", Exact = true }).ClickAsync();
        await page.Locator("input[data-testid=upload-name], [data-testid=upload-name] input").FillAsync("e2e-lora");
        await BrowserSession.ChooseFileAsync(page.Locator("[data-testid=upload-input]"), new FilePayload
        {
            Name = "llama_lora_dora.zip", MimeType = "application/zip", Buffer = UploadPageTests.GoldenZip("llama_lora_dora"),
        }, page.GetByTestId("upload-file"), "llama_lora_dora.zip");
        await page.GetByTestId("upload-submit").ClickAsync();
        await Expect(page).ToHaveURLAsync(_session.Url + "/adapters/e2e-lora", new() { Timeout = 30_000 });
        await Expect(page.GetByTestId("version-table")).ToContainTextAsync("v2");

        // Promote v1, then v2, then roll back to v1: each through the confirmation dialog.
        await PromoteAsync(page, 1, "Create alias");
        await Expect(page.GetByTestId("alias-production")).ToContainTextAsync("production → v1");
        await PromoteAsync(page, 2, "Promote");
        await Expect(page.GetByTestId("alias-production")).ToContainTextAsync("production → v2");
        await page.GetByTestId("promote-v1").ClickAsync();
        await Expect(page.GetByTestId("alias-rollback-warning")).ToBeVisibleAsync();
        await _session.ShotAsync(page, "04-roll-back-dialog");
        await page.GetByTestId("alias-confirm").ClickAsync();
        await Expect(page.GetByTestId("alias-production")).ToContainTextAsync("production → v1");
        await Expect(page.GetByTestId("history-production").Locator("tbody tr")).ToHaveCountAsync(3);

        // Compare v1 and v2 (DoRA differs), lineage of v2.
        await page.GetByTestId("compare").ClickAsync();
        await Expect(page.GetByTestId("compare-config")).ToContainTextAsync("use_dora");
        await page.GetByTestId("lineage-v2").ClickAsync();
        await Expect(page.GetByTestId("lineage")).ToContainTextAsync("llama_base");
        await _session.ShotAsync(page, "03-adapter");

        // Download v1 as a zip in the HF layout.
        var download = await page.RunAndWaitForDownloadAsync(() => page.GetByTestId("download-v1").ClickAsync());
        var zipPath = Path.Combine(_session.Shots, "e2e-lora-v1.zip");
        await download.SaveAsAsync(zipPath);
        using (var zip = ZipFile.OpenRead(zipPath))
        {
            var names = zip.Entries.Select(e => e.FullName).ToList();
            Assert.Contains("adapter_config.json", names);
            Assert.Contains("adapter_model.safetensors", names);
        }

        // Dashboard shows the new versions live; catalog list with the alias.
        await page.GetByRole(AriaRole.Link, new() { Name = "Dashboard", Exact = true }).ClickAsync();
        await Expect(page.GetByTestId("recent-versions")).ToContainTextAsync("e2e-lora");
        await _session.ShotAsync(page, "05-dashboard");
        await page.GetByRole(AriaRole.Link, new() { Name = "Adapters", Exact = true }).ClickAsync();
        await Expect(page.GetByTestId("adapter-table")).ToContainTextAsync("production → v1");
        await _session.ShotAsync(page, "06-adapters");

        // API keys: created once, works as a bearer token, stops working when revoked.
        await page.GetByRole(AriaRole.Link, new() { Name = "API keys", Exact = true }).ClickAsync();
        await page.Locator("input[data-testid=key-name], [data-testid=key-name] input").FillAsync("ci-reader");
        await page.GetByTestId("key-create").ClickAsync();
        var secret = (await page.GetByTestId("key-secret").InnerTextAsync()).Trim();
        Assert.StartsWith("peft_", secret);
        await _session.ShotAsync(page, "07-api-keys");
        using var http = new HttpClient { BaseAddress = new Uri(_session.Url) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/adapters/e2e-lora")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await http.PutAsync("/api/adapters/e2e-lora/aliases/production",
            JsonContent.Create(new { version = 2 }))).StatusCode);
        await page.GetByTestId("revoke-ci-reader").ClickAsync();
        await Expect(page.GetByTestId("key-table")).ToContainTextAsync("revoked");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/api/adapters/e2e-lora")).StatusCode);

        // Dark theme and a narrow window.
        await page.GetByTestId("theme-toggle").ClickAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = "Adapters", Exact = true }).ClickAsync();
        await page.SetViewportSizeAsync(420, 860);
        await Expect(page.GetByTestId("adapter-table")).ToContainTextAsync("e2e-lora");
        await _session.ShotAsync(page, "08-adapters-dark-narrow");

        // Sign out: back to the sign-in page, pages need signing in again.
        await page.SetViewportSizeAsync(1280, 900);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out", Exact = true }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/login"));
        await page.GotoAsync("/adapters/e2e-lora");
        await Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/login"));
    }

    [Fact]
    public async Task A_viewer_sees_no_write_controls_and_cannot_open_the_upload_page()
    {
        await _hub.CreateUserAsync("vera", Peft.Web.Security.HubRoles.Viewer, "viewer-password");
        var page = await (await _session.Browser.NewContextAsync(new() { BaseURL = _session.Url })).NewPageAsync();
        await page.GotoAsync("/login");
        await page.FillAsync("#name", "vera");
        await page.FillAsync("#password", "viewer-password");
        await page.ClickAsync("button[type=submit]");
        await BrowserSession.InteractiveAsync(page);
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "Upload adapter", Exact = true })).ToHaveCountAsync(0);
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "Users", Exact = true })).ToHaveCountAsync(0);
        await page.GotoAsync("/upload");
        await Expect(page.Locator("body")).ToContainTextAsync("role does not allow");
        await Expect(page.GetByTestId("upload-submit")).ToHaveCountAsync(0);
        await _session.ShotAsync(page, "09-viewer-denied");
    }

    private async Task PromoteAsync(IPage page, int version, string confirmText)
    {
        await page.GetByTestId($"promote-v{version}").ClickAsync();
        await Expect(page.GetByTestId("alias-confirm")).ToHaveTextAsync(confirmText);
        await page.GetByTestId("alias-confirm").ClickAsync();
    }

    private static byte[] BadZip()
    {
        using var zip = new MemoryStream();
        using (var archive = new ZipArchive(zip, ZipArchiveMode.Create, leaveOpen: true))
        using (var w = new StreamWriter(archive.CreateEntry("notes.txt").Open())) w.Write("not an adapter");
        return zip.ToArray();
    }
}
