using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Storage.Model;
using Peft.Storage.Services;

namespace Peft.Web.Apis;

// What the catalog's REST API returns: flat records built from the entities, never the entities themselves.

public sealed record BaseModelDto(string Name, string Architecture, string ModelType, long ParameterCount, string DType,
    string ContentSha256, string? Description, DateTimeOffset CreatedAt)
{
    public static BaseModelDto From(BaseModel b) =>
        new(b.Name, b.Architecture, b.ModelType, b.ParameterCount, b.DType, b.ContentSha256, b.Description, b.CreatedAt);
}

public sealed record RegisterBaseModelRequest(string Name, string Folder, string? Description);

public sealed record DatasetDto(string Name, string FileName, string Format, int RowCount, long SizeBytes, string Sha256,
    bool Bundled, string? Description, DateTimeOffset CreatedAt, JsonNode? Preview)
{
    public static DatasetDto From(Dataset d, bool withPreview) =>
        new(d.Name, d.FileName, d.Format, d.RowCount, d.SizeBytes, d.Sha256, d.SourcePath is not null, d.Description, d.CreatedAt,
            withPreview ? JsonNode.Parse(d.PreviewJson) : null);
}

public sealed record FileDto(string FileName, string Sha256, long SizeBytes);

public sealed record VersionDto(string Adapter, int Version, string State, string? StatusMessage, string BaseModel, string PeftType,
    string TaskType, int? Rank, double? Alpha, string TargetsSummary, string ContentSha256, long SizeBytes,
    IReadOnlyList<FileDto> Files, IReadOnlyDictionary<string, double> Metrics, JsonNode? AdapterConfig, JsonNode? TrainingConfig,
    long? SourceJobId, string? SourceDataset, string? SourceDatasetSha256, int? ParentVersion, JsonNode? MergeRecipe,
    string? Description, DateTimeOffset CreatedAt, string? CreatedBy)
{
    public static VersionDto From(AdapterVersion v, string adapterName, string baseModel) =>
        new(adapterName, v.Number, v.State.ToString().ToLowerInvariant(), v.StatusMessage, baseModel, v.PeftType, v.TaskType,
            v.Rank, v.Alpha, v.TargetsSummary, v.ContentSha256, v.SizeBytes,
            v.Files.OrderBy(f => f.FileName, StringComparer.Ordinal).Select(f => new FileDto(f.FileName, f.Sha256, f.SizeBytes)).ToList(),
            v.Metrics.OrderBy(m => m.Name, StringComparer.Ordinal).ToDictionary(m => m.Name, m => m.Value),
            Parse(v.AdapterConfigJson), Parse(v.TrainingConfigJson), v.SourceJobId, v.SourceDataset?.Name, v.SourceDatasetSha256,
            v.ParentVersion?.Number, Parse(v.MergeRecipeJson), v.Description, v.CreatedAt, v.CreatedBy);

    public static VersionDto From(AdapterVersion v) => From(v, v.Adapter.Name, v.Adapter.BaseModel.Name);

    private static JsonNode? Parse(string? json)
    {
        if (json is null) return null;
        try { return JsonNode.Parse(json); }
        catch (JsonException) { return JsonValue.Create(json); }
    }
}

public sealed record VersionSummaryDto(int Version, string State, string PeftType, int? Rank, string ContentSha256, long SizeBytes,
    IReadOnlyDictionary<string, double> Metrics, DateTimeOffset CreatedAt)
{
    public static VersionSummaryDto From(AdapterVersion v) =>
        new(v.Number, v.State.ToString().ToLowerInvariant(), v.PeftType, v.Rank, v.ContentSha256, v.SizeBytes,
            v.Metrics.OrderBy(m => m.Name, StringComparer.Ordinal).ToDictionary(m => m.Name, m => m.Value), v.CreatedAt);
}

public sealed record AdapterSummaryDto(string Name, string BaseModel, string TaskType, string Method, string? Description,
    IReadOnlyList<string> Tags, int LatestVersion, IReadOnlyDictionary<string, int> Aliases, VersionSummaryDto? LatestReady)
{
    public static AdapterSummaryDto From(Adapter a) =>
        new(a.Name, a.BaseModel.Name, a.TaskType, a.Method, a.Description, a.Tags, a.LastVersion,
            a.Aliases.OrderBy(x => x.Name, StringComparer.Ordinal).ToDictionary(x => x.Name, x => x.Version.Number),
            a.Versions.Where(v => v.State == VersionState.Ready).OrderByDescending(v => v.Number).Select(VersionSummaryDto.From).FirstOrDefault());
}

public sealed record AdapterDto(string Name, string BaseModel, string TaskType, string Method, string? Description,
    IReadOnlyList<string> Tags, IReadOnlyDictionary<string, int> Aliases, IReadOnlyList<VersionSummaryDto> Versions, DateTimeOffset CreatedAt)
{
    public static AdapterDto From(Adapter a) =>
        new(a.Name, a.BaseModel.Name, a.TaskType, a.Method, a.Description, a.Tags,
            a.Aliases.OrderBy(x => x.Name, StringComparer.Ordinal).ToDictionary(x => x.Name, x => x.Version.Number),
            a.Versions.OrderBy(v => v.Number).Select(VersionSummaryDto.From).ToList(), a.CreatedAt);
}

public sealed record PageDto<T>(IReadOnlyList<T> Items, int Page, int PageSize, int Total);

public sealed record MoveAliasRequest(int Version);

public sealed record AliasDto(string Adapter, string Alias, int Version, bool Moved);

public sealed record AliasMoveDto(string Alias, int? FromVersion, int ToVersion, string? MovedBy, DateTimeOffset MovedAt)
{
    public static AliasMoveDto From(AliasMove m) => new(m.AliasName, m.FromVersion, m.ToVersion, m.MovedBy, m.MovedAt);
}

public sealed record ComparisonDto(int A, int B, IReadOnlyList<ConfigDifference> ConfigDifferences, IReadOnlyList<MetricComparison> Metrics);
