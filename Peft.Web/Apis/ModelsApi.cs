using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using Peft.Web.Serving;

namespace Peft.Web.Apis;

public sealed record ModelDto(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("owned_by")] string OwnedBy,
    [property: JsonPropertyName("root")] string Root,
    [property: JsonPropertyName("parent")] string? Parent);

public sealed record ModelListDto(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] IReadOnlyList<ModelDto> Data);

/// <summary>GET /v1/models: the base model and every adapter it can serve, adapters with <c>parent</c> = the base.</summary>
public static class ModelsApi
{
    public static RouteGroupBuilder MapModelsApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/v1/models").WithTags("Inference");
        group.MapGet("/", ListAsync)
            .WithName("ListModels")
            .WithSummary("Lists the served base models and their adapters (OpenAI /v1/models)")
            .WithDescription("Adapters (catalog and adapter folder) are listed by name with `root` = the version a bare name resolves to now (`name@3`) and `parent` = their base model, as vLLM does; adapters for bases this server does not serve are left out.");
        return group;
    }

    private static async Task<Ok<ModelListDto>> ListAsync(InferenceService service, EncoderModels encoders, CancellationToken ct)
    {
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var list = new List<ModelDto> { new(service.ModelName, "model", now, "peft", service.ModelName, null) };
        var served = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { service.ModelName };
        foreach (var e in encoders.Hosts)
        {
            list.Add(new ModelDto(e.Name, "model", now, "peft", e.Name, null));
            served.Add(e.Name);
        }
        // Catalog adapters say their base; folder adapters are taken to be the generation model's.
        foreach (var a in await service.Cache.Source.ListAsync(ct))
            if (a.BaseModel is null || served.Contains(a.BaseModel))
                list.Add(new ModelDto(a.Name, "model", now, "peft", a.Key, a.BaseModel ?? service.ModelName));
        return TypedResults.Ok(new ModelListDto("list", list));
    }
}
