namespace Peft.Web.Infrastructure;

/// <summary>A change pages may want to show: topic (catalog, jobs, serving) and what changed, e.g. an adapter name.</summary>
public sealed record HubChange(string Topic, string? Subject);

/// <summary>
/// In-process change feed for the browser app: services and the REST filter publish, pages subscribe and reload.
/// Handlers run on the publisher's thread, so pages marshal with <c>InvokeAsync</c>.
/// </summary>
public sealed class HubNotifications(ILogger<HubNotifications> logger)
{
    public const string Catalog = "catalog";

    public event Func<HubChange, Task>? Changed;

    public async Task PublishAsync(HubChange change)
    {
        var handlers = Changed;
        if (handlers is null) return;
        foreach (var handler in handlers.GetInvocationList().Cast<Func<HubChange, Task>>())
        {
            // One broken page (a closed circuit) must not stop the others or fail the request that published.
            try { await handler(change); }
            catch (Exception e) { logger.LogDebug(e, "change handler failed"); }
        }
    }
}
