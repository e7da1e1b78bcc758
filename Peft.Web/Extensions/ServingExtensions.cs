using Peft.Training.Serving;
using Peft.Web.Apis;
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
        app.MapCompletionsApi();
        app.MapChatCompletionsApi();
        app.MapModelsApi();
        app.MapGenerateApi();
        app.MapLoadedAdaptersApi();
        return app;
    }
}
