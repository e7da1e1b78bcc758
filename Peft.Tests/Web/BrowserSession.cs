using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Peft.Tests.Hub;
using static Microsoft.Playwright.Assertions;

namespace Peft.Tests.Web;

/// <summary>
/// The hub on Kestrel (loopback, a free port) and Debian's chromium driven by Playwright, for the browser tests;
/// screenshots go to <c>PEFT_SCREENSHOTS</c> or the test output folder.
/// </summary>
internal sealed class BrowserSession : IAsyncDisposable
{
    public const string Chromium = "/usr/bin/chromium";
    private readonly IPlaywright _playwright;

    private BrowserSession(IPlaywright playwright, IBrowser browser, string url, string shots)
    {
        _playwright = playwright;
        Browser = browser;
        Url = url;
        Shots = shots;
    }

    public IBrowser Browser { get; }
    public string Url { get; }
    public string Shots { get; }

    /// <summary>Starts <paramref name="hub"/> on loopback (settings must be set before) and launches the browser.</summary>
    public static async Task<BrowserSession> StartAsync(HubFactory hub)
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: apt-get install -y chromium (.ci/run does this)");
        hub.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        hub.StartServer();
        string url = hub.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');
        string shots = Environment.GetEnvironmentVariable("PEFT_SCREENSHOTS") is { Length: > 0 } s ? s : Path.Combine(AppContext.BaseDirectory, "screenshots");
        Directory.CreateDirectory(shots);
        var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = Chromium, Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        });
        return new BrowserSession(playwright, browser, url, shots);
    }

    /// <summary>Waits until the SignalR circuit runs the page (prerendered HTML ignores clicks).</summary>
    public static Task InteractiveAsync(IPage page) =>
        Expect(page.Locator("[data-testid=circuit]")).ToHaveAttributeAsync("data-state", "on", new() { Timeout = 30_000 });

    /// <summary>
    /// Chooses <paramref name="file"/> in a Blazor <c>InputFile</c> until <paramref name="shown"/> reads
    /// <paramref name="text"/>: the component wires its change handler after it renders (one more circuit round
    /// trip), so a file set in between is not seen, and a person would simply choose it again.
    /// </summary>
    public static async Task ChooseFileAsync(ILocator input, FilePayload file, ILocator shown, string text)
    {
        for (int attempt = 1; ; attempt++)
        {
            await input.SetInputFilesAsync(file);
            try
            {
                await Expect(shown).ToContainTextAsync(text, new() { Timeout = 10_000 });
                return;
            }
            catch (PlaywrightException) when (attempt < 3) { }
        }
    }

    /// <summary>A full-page screenshot; no page may show a raw exception or a stack trace.</summary>
    public async Task ShotAsync(IPage page, string name)
    {
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, name + ".png"), FullPage = true });
        var text = await page.InnerTextAsync("body");
        Assert.DoesNotContain("Exception", text);
        Assert.DoesNotContain("   at ", text);
    }

    public async ValueTask DisposeAsync()
    {
        await Browser.DisposeAsync();
        _playwright.Dispose();
    }
}
