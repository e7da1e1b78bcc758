using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Peft.Core;
using Peft.Storage;
using Peft.Storage.Services;

namespace Peft.Web.Apis;

public static class DatasetsApi
{
    public static IEndpointRouteBuilder MapDatasetsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/datasets").WithTags("Datasets");

        api.MapGet("/", async Task<Ok<List<DatasetDto>>> (DatasetService datasets, CancellationToken ct) =>
                TypedResults.Ok((await datasets.ListAsync(ct)).Select(d => DatasetDto.From(d, withPreview: false)).ToList()))
            .WithName("ListDatasets")
            .WithSummary("List datasets")
            .WithDescription("Every dataset with its detected format, row count, size and sha256 (no preview).");

        api.MapGet("/{name}", async Task<Ok<DatasetDto>> (string name, DatasetService datasets, CancellationToken ct) =>
                TypedResults.Ok(DatasetDto.From(await datasets.GetAsync(name, ct), withPreview: true)))
            .WithName("GetDataset")
            .WithSummary("Get one dataset with a preview")
            .WithDescription($"The dataset and its first {DatasetService.PreviewRows} rows as read by the trainer.");

        api.MapPost("/", async Task<Created<DatasetDto>> (HttpRequest request, DatasetService datasets, IOptions<CatalogOptions> options, CancellationToken ct) =>
            {
                var form = await Uploads.ReadFormAsync(request, options.Value.Uploads.MaxDatasetBytes + Uploads.FormOverhead, ct);
                var file = form.Files.GetFile("file") ?? throw new PeftUserException("multipart field 'file' (the data file) is missing", UserErrorKind.BadRequest);
                string? name = form["name"];
                if (string.IsNullOrEmpty(name)) name = Path.GetFileNameWithoutExtension(file.FileName).Replace('_', '-');
                await using var stream = file.OpenReadStream();
                var dataset = await datasets.UploadAsync(name, file.FileName, stream, form["description"], request.HttpContext.User.Identity?.Name, ct);
                return TypedResults.Created($"/api/datasets/{dataset.Name}", DatasetDto.From(dataset, withPreview: true));
            })
            .WithName("UploadDataset")
            .WithSummary("Upload a dataset")
            .WithDescription("Multipart: the data file in field 'file' (.jsonl, .json, .csv, .tsv or .txt), optional 'name' and 'description'. " +
                             "Parsed with the trainer's reader; 422 names the bad row, 413 over Hub:Uploads:MaxDatasetBytes, 409 if the name exists.");
        return app;
    }
}

/// <summary>Request-size handling shared by the upload endpoints.</summary>
internal static class Uploads
{
    /// <summary>Room for multipart boundaries and small fields on top of the file limits.</summary>
    public const long FormOverhead = 64 * 1024;

    /// <summary>
    /// Applies the endpoint's body limit (Kestrel answers 413 past it) and reads the form. A declared length over the
    /// limit is refused before reading anything.
    /// </summary>
    public static async Task<IFormCollection> ReadFormAsync(HttpRequest request, long maxBytes, CancellationToken ct)
    {
        if (request.ContentLength > maxBytes)
            throw new PeftUserException($"request body is {request.ContentLength} bytes, over the {maxBytes}-byte limit for this endpoint", UserErrorKind.TooLarge);
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
            size.MaxRequestBodySize = maxBytes;
        if (!request.HasFormContentType)
            throw new PeftUserException("expected a multipart/form-data body", UserErrorKind.BadRequest);
        try
        {
            return await request.ReadFormAsync(ct);
        }
        catch (InvalidDataException e)
        {
            // The form reader's own limits (too many parts, a part too long) are size problems.
            throw new PeftUserException($"multipart body refused: {e.Message}", UserErrorKind.TooLarge);
        }
    }
}
