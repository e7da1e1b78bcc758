using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using MudBlazor.Services;
using Peft.Storage;
using Peft.Storage.Blobs;
using Peft.Storage.Infrastructure;
using Peft.Web.Builder;
using Peft.Web.Components;
using Peft.Web.Infrastructure;
using Peft.Web.Playground;

namespace Peft.Web.Extensions;

/// <summary>Service wiring for the hub; Program.cs calls <see cref="AddHubServices"/> and nothing else.</summary>
public static class HubServiceExtensions
{
    public static IHostApplicationBuilder AddHubServices(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        var contentRoot = builder.Environment.ContentRootPath;
        services.AddOptions<CatalogOptions>()
            .Bind(builder.Configuration.GetSection(CatalogOptions.Section))
            .PostConfigure(o =>
            {
                // Relative folders in appsettings are relative to the content root, not the working directory.
                o.DataDir = Path.GetFullPath(o.DataDir, contentRoot);
                o.ModelsDir = Path.GetFullPath(o.ModelsDir, contentRoot);
                o.CorporaDir = Path.GetFullPath(o.CorporaDir, contentRoot);
            });

        // The provider is chosen from the bound options (so test hosts can override it), hence a factory, not AddDbContext:
        // PostgreSQL gets the derived context that carries its own migrations.
        services.AddScoped<CatalogDbContext>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<CatalogOptions>>().Value;
            var connection = sp.GetRequiredService<IConfiguration>().GetConnectionString("Catalog");
            if (string.IsNullOrWhiteSpace(connection))
            {
                if (options.DatabaseProvider != DatabaseProvider.Sqlite)
                    throw new InvalidOperationException($"Hub:DatabaseProvider is {options.DatabaseProvider}; set ConnectionStrings:Catalog");
                connection = CatalogDatabase.DefaultSqliteConnection(options.DataDir);
            }
            return CatalogDatabase.Create(options.DatabaseProvider, connection, sp);
        });
        services.AddSingleton<IBlobStore>(sp => new LocalBlobStore(BlobRoot(sp.GetRequiredService<IOptions<CatalogOptions>>().Value)));
        services.AddCatalogServices();
        services.AddHostedService<CatalogInitializer>();

        services.AddHubAuth();
        services.AddHubSecurity(builder.Configuration);
        builder.AddObservability();
        builder.AddHubHealthChecks();
        services.AddSingleton<HubNotifications>();
        services.AddSingleton<ServiceRunner>();
        services.AddScoped<AdapterUploads>();
        services.AddScoped<JobBuilderService>();
        services.AddSingleton<PlaygroundService>();
        services.AddRazorComponents().AddInteractiveServerComponents();
        services.AddMudServices();

        services.AddProblemDetails();
        services.AddExceptionHandler<PeftExceptionHandler>();
        services.AddOpenApi(o => o.AddOperationTransformer(OpenApiExamples.TransformAsync));
        // Multipart bodies are limited per endpoint (RequestSizeLimit + the upload limits); the form reader must not cap them lower.
        services.Configure<FormOptions>(o => o.MultipartBodyLengthLimit = long.MaxValue);
        return builder;
    }

    /// <summary>The content-addressed blob folder under the data dir.</summary>
    public static string BlobRoot(CatalogOptions options) => Path.Combine(options.DataDir, "blobs");

    /// <summary>
    /// Middleware: security headers, the one exception handler, status-code problem details, authentication, body and
    /// rate limits (partitioned by the authenticated caller), authorization, antiforgery, the browser app.
    /// </summary>
    public static WebApplication UseHub(this WebApplication app)
    {
        app.UseSecurityHeaders();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseAuthentication();
        app.UseRequestLimits();
        app.UseAuthorization();
        app.UseAntiforgery();
        if (JobsExtensions.IsWorker(app.Configuration)) return app; // a worker has no pages
        app.MapStaticAssets();
        // The security headers carry frame-ancestors already (stricter); Blazor would add a second CSP header.
        app.MapRazorComponents<App>().AddInteractiveServerRenderMode(o => o.ContentSecurityFrameAncestorsPolicy = null);
        return app;
    }
}
