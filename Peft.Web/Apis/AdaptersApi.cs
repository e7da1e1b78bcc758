using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Peft.Core;
using Peft.Storage;
using Peft.Storage.Model;
using Peft.Storage.Services;
using Peft.Storage.Validation;

namespace Peft.Web.Apis;

public static class AdaptersApi
{
    public static IEndpointRouteBuilder MapAdaptersApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/adapters").WithTags("Adapters");

        api.MapGet("/", async Task<Ok<PageDto<AdapterSummaryDto>>> (AdapterCatalog catalog, CancellationToken ct,
                string? search, string? baseModel, string? method, string? task, string? tag, string? metric, int? page, int? pageSize) =>
            {
                var result = await catalog.ListAsync(new AdapterQuery
                {
                    Search = search, BaseModel = baseModel, Method = method, Task = task, Tag = tag, Metric = metric,
                    Page = page ?? 1, PageSize = pageSize ?? 20,
                }, ct);
                return TypedResults.Ok(new PageDto<AdapterSummaryDto>(result.Items.Select(AdapterSummaryDto.From).ToList(), result.Page, result.PageSize, result.Total));
            })
            .WithName("ListAdapters")
            .WithSummary("List and search adapters")
            .WithDescription("Filters: search (name/description substring), baseModel, method (LORA, IA3 ...), task (CAUSAL_LM ...), tag, " +
                             "metric (e.g. eval_loss<2.5: some ready version qualifies); page (from 1) and pageSize (1..200, default 20).");

        api.MapGet("/{name}", async Task<Ok<AdapterDto>> (string name, AdapterCatalog catalog, CancellationToken ct) =>
                TypedResults.Ok(AdapterDto.From(await catalog.GetAdapterAsync(name, ct))))
            .WithName("GetAdapter")
            .WithSummary("Get an adapter with its versions and aliases")
            .WithDescription("All live (not deleted) versions in every state, and where each alias points.");

        api.MapPost("/{name}/versions", async Task<Created<VersionDto>> (string name, HttpRequest request, AdapterCatalog catalog,
                IOptions<CatalogOptions> options, CancellationToken ct) =>
            {
                var limits = options.Value.Uploads;
                var form = await Uploads.ReadFormAsync(request, limits.MaxAdapterRequestBytes, ct);
                var provenance = Provenance(form, request.HttpContext);
                string? baseModel = form["base_model"];
                if (string.IsNullOrEmpty(baseModel)) baseModel = null;
                var zip = form.Files.GetFile("file");
                var config = form.Files.GetFile("adapter_config");
                var weights = form.Files.GetFile("adapter_model");
                if (zip is not null && (config is not null || weights is not null))
                    throw new PeftUserException("give either a zip in field 'file' or the files in 'adapter_config' and 'adapter_model', not both", UserErrorKind.BadRequest);
                using var staging = new UploadStaging(options.Value.DataDir);
                AdapterVersion version;
                if (zip is not null)
                {
                    await using var s = zip.OpenReadStream();
                    var path = await staging.SaveAsync(s, "upload.zip", limits.MaxAdapterRequestBytes, "field 'file'", ct);
                    version = await catalog.RegisterZipAsync(name, path, baseModel, provenance, ct);
                }
                else
                {
                    if (config is null || weights is null)
                        throw new PeftUserException("multipart fields missing: send a zip in 'file', or both 'adapter_config' (adapter_config.json) " +
                                                    "and 'adapter_model' (adapter_model.safetensors)", UserErrorKind.BadRequest);
                    string configPath, weightsPath;
                    await using (var s = config.OpenReadStream())
                        configPath = await staging.SaveAsync(s, AdapterArchive.ConfigFile, limits.MaxConfigBytes, "field 'adapter_config'", ct);
                    await using (var s = weights.OpenReadStream())
                        weightsPath = await staging.SaveAsync(s, AdapterArchive.WeightsFile, limits.MaxAdapterWeightsBytes, "field 'adapter_model'", ct);
                    version = await catalog.RegisterAsync(name, configPath, weightsPath, baseModel, provenance, ct);
                }
                var stored = await catalog.GetVersionAsync(name, version.Number, ct);
                return TypedResults.Created($"/api/adapters/{name}/versions/{version.Number}", VersionDto.From(stored));
            })
            .WithName("UploadAdapterVersion")
            .WithSummary("Upload a new version")
            .WithDescription("Multipart: a zip in the HF PEFT layout in field 'file', or 'adapter_config' + 'adapter_model'. The base model is " +
                             "'base_model' or the config's base_model_name_or_path. Optional: description, tags (comma-separated), metrics " +
                             "(JSON object of numbers), parent (name@n). Validated before anything is stored (sizes, zip safety, safetensors " +
                             "header, config, fit to the base); every problem is listed in 'errors'. 201 with the ready version.");

        api.MapGet("/{name}/versions/{version}", async Task<Ok<VersionDto>> (string name, string version, AdapterCatalog catalog, CancellationToken ct) =>
                TypedResults.Ok(VersionDto.From(await FindAsync(catalog, name, version, ready: false, ct))))
            .WithName("GetAdapterVersion")
            .WithSummary("Get one version")
            .WithDescription("{version} is a number (any state) or an alias such as 'production' (its ready version).");

        api.MapGet("/{name}/versions/{version}/download", async Task<PhysicalFileHttpResult> (string name, string version, string? file,
                AdapterCatalog catalog, AdapterPackage package, CancellationToken ct) =>
            {
                var v = await FindAsync(catalog, name, version, ready: true, ct);
                var packaged = file is null ? await package.ZipAsync(v, ct) : await package.FileAsync(v, file, ct);
                return TypedResults.PhysicalFile(packaged.Path, packaged.ContentType, packaged.FileName, packaged.LastModified,
                    new EntityTagHeaderValue($"\"{packaged.Sha256}\""), enableRangeProcessing: true);
            })
            .WithName("DownloadAdapterVersion")
            .WithSummary("Download a version")
            .WithDescription("A zip in the HF PEFT layout (adapter_config.json, adapter_model.safetensors, generated README.md model card with " +
                             "base_model, library_name: peft, metrics and lineage), or one file with ?file=adapter_model.safetensors. " +
                             "ETag is the sha256 of the bytes served; Range and If-None-Match are honoured.");

        api.MapDelete("/{name}/versions/{version:int}", async Task<NoContent> (string name, int version, AdapterCatalog catalog, HttpContext http, CancellationToken ct) =>
            {
                await catalog.DeleteVersionAsync(name, version, http.User.Identity?.Name, ct);
                return TypedResults.NoContent();
            })
            .WithName("DeleteAdapterVersion")
            .WithSummary("Soft-delete a version")
            .WithDescription("The row and its history stay; it no longer resolves or downloads and its files become collectable. 409 while an alias points at it.");

        api.MapPut("/{name}/aliases/{alias}", async Task<Ok<AliasDto>> (string name, string alias, MoveAliasRequest request, AdapterCatalog catalog,
                HttpContext http, CancellationToken ct) =>
            {
                var move = await catalog.MoveAliasAsync(name, alias, request.Version, http.User.Identity?.Name, ct);
                return TypedResults.Ok(new AliasDto(name, alias, request.Version, move is not null));
            })
            .WithName("MoveAlias")
            .WithSummary("Point an alias at a version")
            .WithDescription("Body {\"version\": n}. Creates or moves the alias (production, staging, any name) to a ready version and appends the move to its history.");

        api.MapGet("/{name}/aliases/{alias}/history", async Task<Ok<List<AliasMoveDto>>> (string name, string alias, AdapterCatalog catalog, CancellationToken ct) =>
                TypedResults.Ok((await catalog.AliasHistoryAsync(name, alias, ct)).Select(AliasMoveDto.From).ToList()))
            .WithName("GetAliasHistory")
            .WithSummary("History of an alias")
            .WithDescription("Every move, oldest first: from which version to which, who and when. Append-only.");

        api.MapGet("/{name}/compare", async Task<Ok<ComparisonDto>> (string name, int a, int b, AdapterCatalog catalog, CancellationToken ct) =>
            {
                var c = await catalog.CompareAsync(name, a, b, ct);
                return TypedResults.Ok(new ComparisonDto(a, b, c.ConfigDifferences, c.Metrics));
            })
            .WithName("CompareAdapterVersions")
            .WithSummary("Compare two versions")
            .WithDescription("adapter_config.json keys whose values differ, and every metric of either version.");
        return app;
    }

    private static async Task<AdapterVersion> FindAsync(AdapterCatalog catalog, string name, string version, bool ready, CancellationToken ct)
    {
        if (int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            return ready ? await catalog.ResolveAsync($"{name}@{n}", ct) : await catalog.GetVersionAsync(name, n, ct);
        return await catalog.ResolveAsync($"{name}@{version}", ct);
    }

    private static VersionProvenance Provenance(IFormCollection form, HttpContext http)
    {
        Dictionary<string, double>? metrics = null;
        if (form["metrics"].ToString() is { Length: > 0 } json)
        {
            try { metrics = JsonSerializer.Deserialize<Dictionary<string, double>>(json); }
            catch (JsonException e) { throw new PeftUserException($"field 'metrics' must be a JSON object of numbers ({e.Message})", UserErrorKind.BadRequest); }
        }
        string? Field(string key) => form[key].ToString() is { Length: > 0 } s ? s : null;
        return new VersionProvenance
        {
            Description = Field("description"),
            Tags = Field("tags")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            Metrics = metrics,
            ParentReference = Field("parent"),
            CreatedBy = http.User.Identity?.Name,
        };
    }
}
