using Peft.Training.Serving;
using Peft.Web.Apis;
using Peft.Web.Security;
using Peft.Web.Serving;

namespace Peft.Web.Extensions;

/// <summary>Wires the multi-adapter inference server into the host (options from <c>Serving:</c>).</summary>
public static class ServingExtensions
{
    public static IHostApplicationBuilder AddServing(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ServingOptions>().Bind(builder.Configuration.GetSection(ServingOptions.Section));
        builder.Services.AddMetrics();
        builder.Services.AddSingleton(sp => new ServingMetrics(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>()));
        builder.Services.AddSingleton<InferenceService>();
        builder.Services.AddProblemDetails();
        return builder;
    }

    /// <summary>Maps the OpenAI-compatible, LoRAX-shaped and adapter-management endpoints.</summary>
    public static IEndpointRouteBuilder MapServing(this IEndpointRouteBuilder app)
    {
        // Inference needs the infer scope (API key or sign-in) and managing what is loaded the train scope, unless
        // Serving:AllowAnonymous opens the whole serving surface (a private inference replica behind its own gateway).
        var options = app.ServiceProvider.GetRequiredService<Microsoft.Extensions.Options.IOptions<ServingOptions>>().Value;
        var inference = app.MapGroup("");
        var management = app.MapGroup("");
        if (!options.AllowAnonymous)
        {
            inference.RequireAuthorization(HubPolicies.Infer);
            management.RequireAuthorization(HubPolicies.Train);
        }
        inference.MapCompletionsApi();
        inference.MapChatCompletionsApi();
        inference.MapModelsApi();
        inference.MapGenerateApi();
        management.MapLoadedAdaptersApi();
        return app;
    }
}
