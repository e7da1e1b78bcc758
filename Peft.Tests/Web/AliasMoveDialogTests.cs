using Bunit;
using Microsoft.AspNetCore.Components;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using MudBlazor.Services;
using Peft.Web.Components.Shared;

namespace Peft.Tests.Web;

/// <summary>The confirmation shown before an alias moves: direction, warning on roll-back, the version it returns.</summary>
public sealed class AliasMoveDialogTests : MudComponentTest
{
    private async Task<(IRenderedComponent<MudDialogProvider> Provider, IDialogReference Dialog)> ShowAsync(int? current, int target)
    {
        var provider = Ctx.Render<MudDialogProvider>();
        var service = Ctx.Services.GetRequiredService<IDialogService>();
        var parameters = new DialogParameters<AliasMoveDialog>
        {
            { d => d.AdapterName, "support-bot" }, { d => d.Alias, "production" }, { d => d.CurrentVersion, current }, { d => d.TargetVersion, target },
        };
        IDialogReference? reference = null;
        await provider.InvokeAsync(async () => reference = await service.ShowAsync<AliasMoveDialog>("Move alias", parameters));
        return (provider, reference!);
    }

    [Fact]
    public async Task Rolling_back_warns_and_confirming_returns_the_older_version()
    {
        var (provider, dialog) = await ShowAsync(current: 3, target: 1);
        Assert.Contains("Roll back production?", provider.Markup);
        Assert.Contains("from v3 to v1", provider.Find("[data-testid=alias-move-summary]").TextContent);
        Assert.NotNull(provider.Find("[data-testid=alias-rollback-warning]"));
        Assert.Equal("Roll back", provider.Find("[data-testid=alias-confirm]").TextContent.Trim());

        await provider.Find("[data-testid=alias-confirm]").ClickAsync(new());
        var result = await dialog.Result;
        Assert.False(result!.Canceled);
        Assert.Equal(1, result.Data);
    }

    [Fact]
    public async Task Promoting_has_no_warning()
    {
        var (provider, _) = await ShowAsync(current: 1, target: 2);
        Assert.Contains("Promote to production?", provider.Markup);
        Assert.Empty(provider.FindAll("[data-testid=alias-rollback-warning]"));
        Assert.Equal("Promote", provider.Find("[data-testid=alias-confirm]").TextContent.Trim());
    }

    [Fact]
    public async Task Moving_to_the_current_version_cannot_be_confirmed()
    {
        var (provider, _) = await ShowAsync(current: 2, target: 2);
        Assert.NotNull(provider.Find("[data-testid=alias-noop]"));
        Assert.True(provider.Find("[data-testid=alias-confirm]").HasAttribute("disabled"));
    }

    [Fact]
    public async Task A_new_alias_is_created_and_cancel_returns_canceled()
    {
        var (provider, dialog) = await ShowAsync(current: null, target: 4);
        Assert.Contains("Create alias production of support-bot pointing at v4", provider.Find("[data-testid=alias-move-summary]").TextContent);
        await provider.Find("[data-testid=alias-cancel]").ClickAsync(new());
        Assert.True((await dialog.Result)!.Canceled);
    }

    [Theory]
    [InlineData(null, 1, AliasMoveDirection.Create)]
    [InlineData(1, 2, AliasMoveDirection.Promote)]
    [InlineData(2, 1, AliasMoveDirection.RollBack)]
    [InlineData(2, 2, AliasMoveDirection.None)]
    public void Direction_follows_the_version_numbers(int? current, int target, AliasMoveDirection expected) =>
        Assert.Equal(expected, AliasMoves.DirectionOf(current, target));
}
