using Bunit;
using MudBlazor.Services;

namespace Peft.Tests.Web;

/// <summary>
/// A bUnit context with MudBlazor's services and loose JS interop (MudBlazor calls JS on render), owned by the test
/// class and disposed asynchronously (its renderer holds async disposables).
/// </summary>
public abstract class MudComponentTest : IAsyncLifetime
{
    protected BunitContext Ctx { get; } = new();

    /// <summary>Services the components under test need beyond MudBlazor's.</summary>
    protected virtual void Configure() { }

    public Task InitializeAsync()
    {
        Ctx.Services.AddMudServices();
        Ctx.JSInterop.Mode = JSRuntimeMode.Loose;
        Configure();
        return Task.CompletedTask;
    }

    public virtual async Task DisposeAsync() => await Ctx.DisposeAsync();
}
