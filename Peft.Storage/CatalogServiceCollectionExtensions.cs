using Microsoft.Extensions.DependencyInjection;
using Peft.Storage.Services;
using Peft.Storage.Validation;

namespace Peft.Storage;

public static class CatalogServiceCollectionExtensions
{
    /// <summary>The catalog services (scoped, over the scoped DbContext); the host registers the DbContext and blob store.</summary>
    public static IServiceCollection AddCatalogServices(this IServiceCollection services)
    {
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<BaseModelHeaderCache>();
        services.AddScoped<BaseModelService>();
        services.AddScoped<DatasetService>();
        services.AddScoped<AdapterValidator>();
        services.AddScoped<AdapterCatalog>();
        services.AddScoped<AdapterPackage>();
        services.AddScoped<CatalogSeeder>();
        return services;
    }
}
