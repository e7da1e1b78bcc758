using System.IO.Compression;
using Bunit;
using Bunit.TestDoubles;
using Microsoft.AspNetCore.Components.Forms;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using MudBlazor.Services;
using Peft.Tests.Hub;
using Peft.Web.Components.Pages;
using Peft.Web.Infrastructure;

namespace Peft.Tests.Web;

/// <summary>The upload page over the real catalog (SQLite, blob store, validator): refusals are listed and change nothing.</summary>
public sealed class UploadPageTests : MudComponentTest
{
    private readonly HubFactory _hub = new();

    protected override void Configure()
    {
        Ctx.Services.AddSingleton(_hub.Services.GetRequiredService<ServiceRunner>());
        Ctx.Services.AddSingleton(_hub.Services.GetRequiredService<HubNotifications>());
        Ctx.AddAuthorization().SetAuthorized("admin");
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _hub.Dispose();
    }

    private IRenderedComponent<Upload> RenderWithName(string name)
    {
        Ctx.Render<MudPopoverProvider>();   // the base-model select needs it
        var cut = Ctx.Render<Upload>();
        cut.FindComponents<MudTextField<string>>()[0].Find("input").Change(name);
        return cut;
    }

    [Fact]
    public async Task Every_problem_of_a_refused_zip_is_listed_and_the_catalog_is_unchanged()
    {
        var before = await _hub.CountsAsync();
        var cut = RenderWithName("bad-upload");
        using var zip = new MemoryStream();
        using (var archive = new ZipArchive(zip, ZipArchiveMode.Create, leaveOpen: true))
        {
            using (var w = new StreamWriter(archive.CreateEntry("notes.txt").Open())) w.Write("not an adapter");
            archive.CreateEntry("inner.zip").Open().Dispose();
        }
        cut.FindComponent<InputFile>().UploadFiles(InputFileContent.CreateFromBinary(zip.ToArray(), "bad.zip"));
        await cut.Find("[data-testid=upload-submit]").ClickAsync(new());

        cut.WaitForAssertion(() => Assert.NotEmpty(cut.FindAll("[data-testid=upload-problems]")), TimeSpan.FromSeconds(20));
        var problems = cut.Find("[data-testid=upload-problems]");
        Assert.Contains("Invalid adapter archive", problems.TextContent);
        var items = problems.QuerySelectorAll("li").Select(li => li.TextContent).ToList();
        Assert.Equal(2, items.Count);
        Assert.Contains(items, i => i.Contains("'notes.txt' is not part of an adapter"));
        Assert.Contains(items, i => i.Contains("'inner.zip' is an archive"));
        Assert.Equal(before, await _hub.CountsAsync());
    }

    [Fact]
    public void A_file_that_is_not_a_zip_is_refused_before_sending()
    {
        var cut = RenderWithName("notes");
        cut.FindComponent<InputFile>().UploadFiles(InputFileContent.CreateFromText("hello", "notes.txt"));
        Assert.Contains("'notes.txt' is not a zip", cut.Find("[data-testid=upload-problems]").TextContent);
        Assert.True(cut.Find("[data-testid=upload-submit]").HasAttribute("disabled"));
    }

    [Fact]
    public async Task A_valid_zip_becomes_version_1_and_the_page_moves_to_the_adapter()
    {
        using var admin = _hub.CreateClient();
        await _hub.RegisterGoldenBaseAsync(admin, "llama_base");
        var cut = RenderWithName("good-upload");
        cut.FindComponent<InputFile>().UploadFiles(InputFileContent.CreateFromBinary(GoldenZip("llama_lora"), "llama_lora.zip"));
        await cut.Find("[data-testid=upload-submit]").ClickAsync(new());
        var nav = Ctx.Services.GetRequiredService<Microsoft.AspNetCore.Components.NavigationManager>();
        cut.WaitForAssertion(() => Assert.EndsWith("/adapters/good-upload", nav.Uri), TimeSpan.FromSeconds(20));
        var counts = await _hub.CountsAsync();
        Assert.Equal((1, 1), (counts.Adapters, counts.Versions));
    }

    internal static byte[] GoldenZip(string folder)
    {
        using var zip = new MemoryStream();
        using (var archive = new ZipArchive(zip, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var file in new[] { "adapter_config.json", "adapter_model.safetensors" })
                archive.CreateEntryFromFile(Path.Combine(Peft.Tests.Support.GoldenData.Root, folder, file), file);
        return zip.ToArray();
    }
}
