using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Peft.Core;
using Peft.Storage.Model;

namespace Peft.Storage.Services;

/// <summary>Filters for listing adapters; null means "any".</summary>
public sealed record AdapterQuery
{
    /// <summary>Substring of the name or description.</summary>
    public string? Search { get; init; }
    public string? BaseModel { get; init; }
    public string? Method { get; init; }
    public string? Task { get; init; }
    public string? Tag { get; init; }
    /// <summary><c>name&lt;value</c>, <c>name&gt;=value</c> …: some ready version has that metric in range.</summary>
    public string? Metric { get; init; }
    public int Page { get; init; } = 1;
    public int PageSize { get; init; } = 20;
}

public sealed record PagedResult<T>(IReadOnlyList<T> Items, int Page, int PageSize, int Total);

/// <summary>Two versions side by side: config keys that differ, and metrics.</summary>
public sealed record VersionComparison(AdapterVersion A, AdapterVersion B, IReadOnlyList<ConfigDifference> ConfigDifferences,
    IReadOnlyList<MetricComparison> Metrics);

public sealed record ConfigDifference(string Key, string? A, string? B);

public sealed record MetricComparison(string Name, double? A, double? B);

public sealed partial class AdapterCatalog
{
    /// <summary>Versions not soft-deleted.</summary>
    private IQueryable<AdapterVersion> LiveVersions(int adapterId) =>
        db.AdapterVersions.Where(v => v.AdapterId == adapterId && v.DeletedAt == null);

    private async Task<Adapter> GetAdapterRowAsync(string name, CancellationToken ct) =>
        await db.Adapters.AsNoTracking().FirstOrDefaultAsync(a => a.Name == name, ct)
        ?? throw new PeftUserException($"adapter '{name}' not found", UserErrorKind.NotFound);

    /// <summary>An adapter with its base model, aliases (with version numbers) and live versions.</summary>
    public async Task<Adapter> GetAdapterAsync(string name, CancellationToken ct) =>
        await db.Adapters.AsNoTracking().AsSplitQuery()
            .Include(a => a.BaseModel)
            .Include(a => a.Aliases).ThenInclude(al => al.Version)
            .Include(a => a.Versions.Where(v => v.DeletedAt == null).OrderBy(v => v.Number)).ThenInclude(v => v.Metrics)
            .FirstOrDefaultAsync(a => a.Name == name, ct)
        ?? throw new PeftUserException($"adapter '{name}' not found", UserErrorKind.NotFound);

    /// <summary>
    /// Resolves <c>name</c> (latest ready version), <c>name@3</c> or <c>name@production</c> to a ready, live version
    /// (with its files, metrics and adapter).
    /// </summary>
    public async Task<AdapterVersion> ResolveAsync(string reference, CancellationToken ct)
    {
        var at = reference.IndexOf('@');
        var name = at < 0 ? reference : reference[..at];
        var selector = at < 0 ? null : reference[(at + 1)..];
        var adapter = await GetAdapterRowAsync(name, ct);
        var ready = WithDetails(LiveVersions(adapter.Id).Where(v => v.State == VersionState.Ready));
        AdapterVersion? version;
        if (selector is null)
            version = await ready.OrderByDescending(v => v.Number).FirstOrDefaultAsync(ct);
        else if (int.TryParse(selector, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            version = await ready.FirstOrDefaultAsync(v => v.Number == n, ct);
        else
        {
            var alias = await db.AdapterAliases.AsNoTracking().FirstOrDefaultAsync(a => a.AdapterId == adapter.Id && a.Name == selector, ct)
                ?? throw new PeftUserException($"adapter '{name}' has no alias '{selector}'", UserErrorKind.NotFound);
            version = await ready.FirstOrDefaultAsync(v => v.Id == alias.VersionId, ct);
        }
        return version ?? throw new PeftUserException($"'{reference}' does not name a ready version", UserErrorKind.NotFound);
    }

    /// <summary>Version <paramref name="number"/> of an adapter in any state (pending and failed ones included), unless deleted.</summary>
    public async Task<AdapterVersion> GetVersionAsync(string adapterName, int number, CancellationToken ct)
    {
        var adapter = await GetAdapterRowAsync(adapterName, ct);
        return await WithDetails(LiveVersions(adapter.Id)).FirstOrDefaultAsync(v => v.Number == number, ct)
            ?? throw new PeftUserException($"adapter '{adapterName}' has no version {number}", UserErrorKind.NotFound);
    }

    private static IQueryable<AdapterVersion> WithDetails(IQueryable<AdapterVersion> q) =>
        q.AsNoTracking().AsSplitQuery().Include(v => v.Adapter).ThenInclude(a => a.BaseModel)
            .Include(v => v.Files).Include(v => v.Metrics).Include(v => v.SourceDataset).Include(v => v.ParentVersion);

    public async Task<PagedResult<Adapter>> ListAsync(AdapterQuery query, CancellationToken ct)
    {
        if (query.Page < 1) throw new PeftUserException($"page must be 1 or more, got {query.Page}", UserErrorKind.BadRequest);
        if (query.PageSize is < 1 or > 200) throw new PeftUserException($"pageSize must be 1..200, got {query.PageSize}", UserErrorKind.BadRequest);
        IQueryable<Adapter> q = db.Adapters.AsNoTracking();
        if (!string.IsNullOrEmpty(query.Search))
            q = q.Where(a => a.Name.Contains(query.Search) || (a.Description != null && a.Description.Contains(query.Search)));
        if (!string.IsNullOrEmpty(query.BaseModel)) q = q.Where(a => a.BaseModel.Name == query.BaseModel);
        if (!string.IsNullOrEmpty(query.Method)) q = q.Where(a => a.Method == query.Method.ToUpperInvariant());
        if (!string.IsNullOrEmpty(query.Task)) q = q.Where(a => a.TaskType == query.Task.ToUpperInvariant());
        if (!string.IsNullOrEmpty(query.Tag)) q = q.Where(a => a.Tags.Contains(query.Tag));
        if (!string.IsNullOrEmpty(query.Metric)) q = FilterByMetric(q, query.Metric);
        var total = await q.CountAsync(ct);
        var items = await q.OrderBy(a => a.Name).Skip((query.Page - 1) * query.PageSize).Take(query.PageSize)
            .Include(a => a.BaseModel)
            .Include(a => a.Aliases).ThenInclude(al => al.Version)
            .Include(a => a.Versions.Where(v => v.DeletedAt == null && v.State == VersionState.Ready).OrderByDescending(v => v.Number).Take(1))
                .ThenInclude(v => v.Metrics)
            .AsSplitQuery().ToListAsync(ct);
        return new PagedResult<Adapter>(items, query.Page, query.PageSize, total);
    }

    private IQueryable<Adapter> FilterByMetric(IQueryable<Adapter> q, string filter)
    {
        string[] ops = ["<=", ">=", "<", ">", "="];
        var op = ops.FirstOrDefault(filter.Contains)
            ?? throw new PeftUserException($"metric filter '{filter}' must look like name<value, name>=value or name=value", UserErrorKind.BadRequest);
        var parts = filter.Split(op, 2);
        if (!double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || parts[0].Length == 0)
            throw new PeftUserException($"metric filter '{filter}' needs a metric name and a number", UserErrorKind.BadRequest);
        var name = parts[0];
        var metrics = db.VersionMetrics.Where(m => m.Name == name);
        metrics = op switch
        {
            "<=" => metrics.Where(m => m.Value <= value),
            ">=" => metrics.Where(m => m.Value >= value),
            "<" => metrics.Where(m => m.Value < value),
            ">" => metrics.Where(m => m.Value > value),
            _ => metrics.Where(m => m.Value == value),
        };
        return q.Where(a => db.AdapterVersions.Any(v => v.AdapterId == a.Id && v.DeletedAt == null && v.State == VersionState.Ready
            && metrics.Any(m => m.VersionId == v.Id)));
    }

    public async Task<VersionComparison> CompareAsync(string adapterName, int a, int b, CancellationToken ct)
    {
        var va = await GetVersionAsync(adapterName, a, ct);
        var vb = await GetVersionAsync(adapterName, b, ct);
        var ca = JsonNode.Parse(va.AdapterConfigJson)!.AsObject();
        var cb = JsonNode.Parse(vb.AdapterConfigJson)!.AsObject();
        var diffs = ca.Select(kv => kv.Key).Union(cb.Select(kv => kv.Key)).Order(StringComparer.Ordinal)
            .Select(k => new ConfigDifference(k, ca[k]?.ToJsonString(), cb[k]?.ToJsonString()))
            .Where(d => d.A != d.B).ToList();
        var metrics = va.Metrics.Select(m => m.Name).Union(vb.Metrics.Select(m => m.Name)).Order(StringComparer.Ordinal)
            .Select(n => new MetricComparison(n, va.Metrics.FirstOrDefault(m => m.Name == n)?.Value, vb.Metrics.FirstOrDefault(m => m.Name == n)?.Value))
            .ToList();
        return new VersionComparison(va, vb, diffs, metrics);
    }
}
