using Peft.Web.Apis;

namespace Peft.Web.Extensions;

/// <summary>All REST route groups and the OpenAPI document.</summary>
public static class HubApiExtensions
{
    public static IEndpointRouteBuilder MapHubApis(this IEndpointRouteBuilder app)
    {
        app.MapOpenApi();
        app.MapBaseModelsApi();
        app.MapDatasetsApi();
        app.MapAdaptersApi();
        return app;
    }
}
