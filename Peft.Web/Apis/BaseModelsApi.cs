using Microsoft.AspNetCore.Http.HttpResults;
using Peft.Storage.Services;

namespace Peft.Web.Apis;

public static class BaseModelsApi
{
    public static IEndpointRouteBuilder MapBaseModelsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/base-models").WithTags("Base models");

        api.MapGet("/", async Task<Ok<List<BaseModelDto>>> (BaseModelService models, CancellationToken ct) =>
                TypedResults.Ok((await models.ListAsync(ct)).Select(BaseModelDto.From).ToList()))
            .WithName("ListBaseModels")
            .WithSummary("List base models")
            .WithDescription("Every registered base model with its architecture, parameter count, dtype and content hash.");

        api.MapGet("/{name}", async Task<Ok<BaseModelDto>> (string name, BaseModelService models, CancellationToken ct) =>
                TypedResults.Ok(BaseModelDto.From(await models.GetAsync(name, ct))))
            .WithName("GetBaseModel")
            .WithSummary("Get one base model")
            .WithDescription("404 when no base model has that name.");

        api.MapPost("/", async Task<Created<BaseModelDto>> (RegisterBaseModelRequest request, BaseModelService models, HttpContext http, CancellationToken ct) =>
            {
                var model = await models.RegisterAsync(request.Name, request.Folder, request.Description, http.User.Identity?.Name, ct);
                return TypedResults.Created($"/api/base-models/{model.Name}", BaseModelDto.From(model));
            })
            .WithName("RegisterBaseModel")
            .WithSummary("Register a base model folder")
            .WithDescription("Registers a folder under Hub:ModelsDir holding config.json and safetensors weights. Only headers are read " +
                             "(architecture, parameter count, dtype); the content hash covers config.json and the weights. 409 if the name exists.");
        return app;
    }
}
