using Microsoft.Extensions.Options;
using Peft.Storage;
using Peft.Storage.Blobs;
using Peft.Training.Serving;
using Peft.Training.Serving.Adapters;
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
        builder.Services.AddSingleton<IAdapterSource>(sp =>
        {
            var o = sp.GetRequiredService<IOptions<ServingOptions>>().Value;
            var root = sp.GetRequiredService<IHostEnvironment>().ContentRootPath;
            var folder = new FolderAdapterSource(Path.IsPathRooted(o.AdaptersPath) ? o.AdaptersPath : Path.Combine(root, o.AdaptersPath));
            if (!o.UseCatalog) return folder;
            var dataDir = sp.GetRequiredService<IOptions<CatalogOptions>>().Value.DataDir;
            return new CatalogAdapterSource(sp.GetRequiredService<IServiceScopeFactory>(), sp.GetRequiredService<IBlobStore>(),
                Path.Combine(dataDir, "serving-adapters"), folder);
        });
        builder.Services.AddSingleton<InferenceService>();
        builder.Services.AddSingleton<EncoderModels>();
        builder.Services.AddSingleton<ServingWarmup>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ServingWarmup>());
        // Readiness: the /health/ready mapping (ops) picks up checks tagged "ready".
        builder.Services.AddHealthChecks().AddCheck<ModelHealthCheck>(ModelHealthCheck.Name, tags: ["ready"]);
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
        inference.MapEncoderApis();
        management.MapLoadedAdaptersApi();
        return app;
    }
}
