using Peft.Web.Apis;
using Peft.Web.Infrastructure;
using Peft.Web.Observability;
using Peft.Web.Security;
using Scalar.AspNetCore;

namespace Peft.Web.Extensions;

/// <summary>All REST route groups, the OpenAPI document with its reference page, health and metrics endpoints.</summary>
public static class HubApiExtensions
{
    public static IEndpointRouteBuilder MapHubApis(this IEndpointRouteBuilder app)
    {
        // Health and metrics are served by every role (a worker's container is probed too); nothing else by a worker.
        app.MapHubHealthChecks();
        app.MapObservability();
        if (JobsExtensions.IsWorker(app.ServiceProvider.GetRequiredService<IConfiguration>())) return app;
        // The document and the reference page show the whole API surface: signed-in users (cookie) or read keys only.
        app.MapOpenApi().RequireAuthorization(HubPolicies.Read);
        app.MapScalarApiReference("/scalar", (o, http) => o
                .WithTitle("Peft hub API")
                .DisableDefaultFonts()
                .WithNonce((string)http.Items[SecurityExtensions.NonceItem]!)
                .AddHttpAuthentication("Bearer", s => s.Token = ""))
            .RequireAuthorization(HubPolicies.Read);
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
        var request = ctx.HttpContext.Request;
        bool write = !HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method);
        var metrics = ctx.HttpContext.RequestServices.GetRequiredService<HubMetrics>();
        object? result;
        try
        {
            result = await next(ctx);
        }
        catch (Exception e) when (write)
        {
            metrics.CatalogWrite(request.Method, Infrastructure.PeftExceptionHandler.StatusOf(e));
            throw;
        }
        if (write)
        {
            metrics.CatalogWrite(request.Method, (result as IStatusCodeHttpResult)?.StatusCode ?? StatusCodes.Status200OK);
            await ctx.HttpContext.RequestServices.GetRequiredService<HubNotifications>()
                .PublishAsync(new HubChange(HubNotifications.Catalog, request.Path.Value));
        }
        return result;
    }
}
