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
        services.AddSingleton<IBlobStore>(sp =>
            new LocalBlobStore(Path.Combine(sp.GetRequiredService<IOptions<CatalogOptions>>().Value.DataDir, "blobs")));
        services.AddCatalogServices();
        services.AddHostedService<CatalogInitializer>();

        services.AddHubAuth();
        services.AddSingleton<HubNotifications>();
        services.AddSingleton<ServiceRunner>();
        services.AddScoped<AdapterUploads>();
        services.AddScoped<JobBuilderService>();
        services.AddSingleton<PlaygroundService>();
        services.AddRazorComponents().AddInteractiveServerComponents();
        services.AddMudServices();

        services.AddProblemDetails();
        services.AddExceptionHandler<PeftExceptionHandler>();
        services.AddOpenApi();
        // Multipart bodies are limited per endpoint (RequestSizeLimit + the upload limits); the form reader must not cap them lower.
        services.Configure<FormOptions>(o => o.MultipartBodyLengthLimit = long.MaxValue);
        return builder;
    }

    /// <summary>Middleware: the one exception handler, status-code problem details, authentication, the browser app.</summary>
    public static WebApplication UseHub(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseAntiforgery();
        if (JobsExtensions.IsWorker(app.Configuration)) return app; // a worker has no pages
        app.MapStaticAssets();
        app.MapRazorComponents<App>().AddInteractiveServerRenderMode();
        return app;
    }
}
