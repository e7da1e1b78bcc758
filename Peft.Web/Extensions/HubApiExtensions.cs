using Peft.Web.Apis;
using Peft.Web.Infrastructure;

namespace Peft.Web.Extensions;

/// <summary>All REST route groups and the OpenAPI document.</summary>
public static class HubApiExtensions
{
    public static IEndpointRouteBuilder MapHubApis(this IEndpointRouteBuilder app)
    {
        // A worker-only process serves no HTTP endpoints (it still listens; nothing is mapped).
        if (JobsExtensions.IsWorker(app.ServiceProvider.GetRequiredService<IConfiguration>())) return app;
        app.MapOpenApi();
        var catalog = app.MapGroup("").RequireReadOrTrain().AddEndpointFilter(PublishCatalogChanges);
        catalog.MapBaseModelsApi();
        catalog.MapDatasetsApi();
        catalog.MapAdaptersApi();
        app.MapAccountEndpoints();
        app.MapJobs();
        return app;
    }

    /// <summary>A write that succeeded through REST tells open pages to reload (the browser app shows it live).</summary>
    private static async ValueTask<object?> PublishCatalogChanges(EndpointFilterInvocationContext ctx, EndpointFilterDelegate next)
    {
        var result = await next(ctx);
        var request = ctx.HttpContext.Request;
        if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method))
            await ctx.HttpContext.RequestServices.GetRequiredService<HubNotifications>()
                .PublishAsync(new HubChange(HubNotifications.Catalog, request.Path.Value));
        return result;
    }
}
