using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Peft.Core;
using Peft.Core.Configs;
using Peft.Core.Models;
using Peft.Storage.Blobs;
using Peft.Storage.Infrastructure;
using Peft.Storage.Model;
using Peft.Storage.Validation;

namespace Peft.Storage.Services;

/// <summary>Lineage and metadata a new version carries besides its files (all optional).</summary>
public sealed record VersionProvenance
{
    public string? Description { get; init; }
    public IReadOnlyList<string>? Tags { get; init; }
    public string? CreatedBy { get; init; }
    public long? SourceJobId { get; init; }
    public int? SourceDatasetId { get; init; }
    /// <summary>The version training continued from, as <c>name@n</c> or <c>name@alias</c>.</summary>
    public string? ParentReference { get; init; }
    public string? TrainingConfigJson { get; init; }
    public string? MergeRecipeJson { get; init; }
    public IReadOnlyDictionary<string, double>? Metrics { get; init; }
}

/// <summary>
/// Adapters and their versions. Registration is validate → pending row (number taken) → blobs written, fsynced and
/// verified → ready, so a crash at any point leaves either no row, or a pending row that
/// <see cref="FailStalePendingAsync"/> turns to failed and whose blobs <see cref="CollectGarbageAsync"/> then removes.
/// </summary>
public sealed partial class AdapterCatalog(CatalogDbContext db, IBlobStore blobs, AdapterValidator validator,
    IOptions<CatalogOptions> options, TimeProvider clock)
{
    private CatalogOptions Options => options.Value;

    /// <summary>Validates and registers an adapter given as its two files (staged on disk).</summary>
    public async Task<AdapterVersion> RegisterAsync(string adapterName, string configPath, string weightsPath, string? baseModelName,
        VersionProvenance provenance, CancellationToken ct)
    {
        CatalogNames.Check(adapterName, "adapter");
        var adapter = await validator.ValidateAsync(configPath, weightsPath, baseModelName, Options.Uploads, ct);
        return await RegisterValidatedAsync(adapterName, adapter, provenance, ct);
    }

    /// <summary>Validates and registers an uploaded zip in the HF PEFT layout.</summary>
    public async Task<AdapterVersion> RegisterZipAsync(string adapterName, string zipPath, string? baseModelName,
        VersionProvenance provenance, CancellationToken ct)
    {
        CatalogNames.Check(adapterName, "adapter");
        var dir = Path.Combine(Path.GetDirectoryName(zipPath)!, "unpacked");
        Directory.CreateDirectory(dir);
        var (config, weights) = AdapterArchive.Extract(zipPath, dir, Options.Uploads);
        return await RegisterAsync(adapterName, config, weights, baseModelName, provenance, ct);
    }

    private async Task<AdapterVersion> RegisterValidatedAsync(string adapterName, ValidatedAdapter adapter, VersionProvenance p, CancellationToken ct)
    {
        int? parentId = p.ParentReference is null ? null : (await ResolveAsync(p.ParentReference, ct)).Id;
        string? datasetSha = null;
        if (p.SourceDatasetId is int dsId)
            datasetSha = (await db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.Id == dsId, ct)
                ?? throw new PeftUserException($"source dataset {dsId} not found", UserErrorKind.NotFound)).Sha256;

        var files = new List<AdapterFile>
        {
            new() { FileName = AdapterArchive.ConfigFile, Sha256 = adapter.ConfigSha256, SizeBytes = adapter.ConfigBytes.Length },
            new() { FileName = AdapterArchive.WeightsFile, Sha256 = adapter.WeightsSha256, SizeBytes = adapter.Weights.FileLength },
        };
        var version = await InsertPendingAsync(adapterName, adapter, files, parentId, datasetSha, p, ct);
        try
        {
            await using (var config = new MemoryStream(adapter.ConfigBytes, writable: false))
                await PutExpectingAsync(config, adapter.ConfigSha256, ct);
            await using (var weights = new FileStream(adapter.WeightsPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous))
                await PutExpectingAsync(weights, adapter.WeightsSha256, ct);

            if (Options.PauseAfterBlobWriteMarker is { } marker)
            {
                // Written aside and renamed: the test polls for the file and must never read it half-written.
                await File.WriteAllTextAsync(marker + ".tmp", $"{adapterName}@{version.Number}", ct);
                File.Move(marker + ".tmp", marker, overwrite: true);
                await Task.Delay(Timeout.Infinite, ct); // the crash test kills the process here
            }

            foreach (var f in files)
                if (!await blobs.VerifyAsync(f.Sha256, ct))
                    throw new IOException($"blob {f.Sha256} of {f.FileName} did not verify after writing");
            await db.AdapterVersions.Where(v => v.Id == version.Id && v.State == VersionState.Pending)
                .ExecuteUpdateAsync(s => s.SetProperty(v => v.State, VersionState.Ready), ct);
            version.State = VersionState.Ready;
            return version;
        }
        catch (Exception e)
        {
            // Not a crash: record why (the number stays used, so numbering remains gapless).
            await db.AdapterVersions.Where(v => v.Id == version.Id)
                .ExecuteUpdateAsync(s => s.SetProperty(v => v.State, VersionState.Failed)
                    .SetProperty(v => v.StatusMessage, Truncate(e.Message, 1000)), CancellationToken.None);
            throw;
        }
    }

    private async Task PutExpectingAsync(Stream content, string sha256, CancellationToken ct)
    {
        var blob = await blobs.PutAsync(content, ct);
        if (blob.Sha256 != sha256) throw new IOException($"file changed while being stored (expected {sha256}, stored {blob.Sha256})");
    }

    /// <summary>
    /// Takes the next number and writes the pending row in one transaction. The first statement is the counter's
    /// UPDATE, so the transaction holds the write lock (SQLite) or the adapter's row lock (PostgreSQL) before it
    /// reads the number: concurrent registrations queue there and get consecutive numbers.
    /// </summary>
    private async Task<AdapterVersion> InsertPendingAsync(string adapterName, ValidatedAdapter adapter, List<AdapterFile> files,
        int? parentId, string? datasetSha, VersionProvenance p, CancellationToken ct)
    {
        var strategy = db.Database.CreateExecutionStrategy();
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return await strategy.ExecuteAsync(async () =>
                {
                    db.ChangeTracker.Clear();
                    await using var tx = await db.Database.BeginTransactionAsync(ct);
                    var adapterId = await EnsureAdapterAsync(adapterName, adapter, p, ct);
                    await db.Adapters.Where(a => a.Id == adapterId)
                        .ExecuteUpdateAsync(s => s.SetProperty(a => a.LastVersion, a => a.LastVersion + 1), ct);
                    var number = await db.Adapters.Where(a => a.Id == adapterId).Select(a => a.LastVersion).SingleAsync(ct);
                    var version = NewVersion(adapterId, number, adapter, files, parentId, datasetSha, p);
                    db.AdapterVersions.Add(version);
                    await db.SaveChangesAsync(ct);
                    await tx.CommitAsync(ct);
                    return version;
                });
            }
            catch (DbUpdateException) when (attempt < 3)
            {
                // Two first registrations of a new name raced on its unique index; the loser retries and finds it.
            }
        }
    }

    private async Task<int> EnsureAdapterAsync(string name, ValidatedAdapter adapter, VersionProvenance p, CancellationToken ct)
    {
        var existing = await db.Adapters.AsNoTracking().Where(a => a.Name == name)
            .Select(a => new { a.Id, a.BaseModelId }).FirstOrDefaultAsync(ct);
        if (existing is not null)
        {
            if (existing.BaseModelId != adapter.BaseModel.Id)
                throw new PeftUserException($"adapter '{name}' is for another base model; this upload is for '{adapter.BaseModel.Name}'", UserErrorKind.Conflict);
            return existing.Id;
        }
        var created = new Adapter
        {
            Name = name,
            BaseModelId = adapter.BaseModel.Id,
            TaskType = adapter.Config.TaskType?.ToPeftString() ?? "",
            Method = adapter.Config.PeftType,
            Description = p.Description,
            Tags = p.Tags?.Distinct().ToList() ?? [],
            CreatedAt = clock.GetUtcNow(),
            CreatedBy = p.CreatedBy,
        };
        db.Adapters.Add(created);
        await db.SaveChangesAsync(ct);
        return created.Id;
    }

    private AdapterVersion NewVersion(int adapterId, int number, ValidatedAdapter adapter, List<AdapterFile> files,
        int? parentId, string? datasetSha, VersionProvenance p)
    {
        var c = adapter.Config;
        return new AdapterVersion
        {
            AdapterId = adapterId,
            Number = number,
            State = VersionState.Pending,
            PeftType = c.PeftType,
            TaskType = c.TaskType?.ToPeftString() ?? "",
            Rank = c is LoraFamilyConfig l ? l.R : null,
            Alpha = c is LoraFamilyConfig la ? la.LoraAlpha : null,
            TargetsSummary = Summary(c),
            ContentSha256 = Hashing.Combine(files.Select(f => (f.FileName, f.Sha256))),
            SizeBytes = files.Sum(f => f.SizeBytes),
            AdapterConfigJson = System.Text.Encoding.UTF8.GetString(adapter.ConfigBytes),
            TrainingConfigJson = p.TrainingConfigJson,
            SourceJobId = p.SourceJobId,
            SourceDatasetId = p.SourceDatasetId,
            SourceDatasetSha256 = datasetSha,
            ParentVersionId = parentId,
            MergeRecipeJson = p.MergeRecipeJson,
            Description = p.Description,
            CreatedAt = clock.GetUtcNow(),
            CreatedBy = p.CreatedBy,
            Files = files.Select(f => new AdapterFile { FileName = f.FileName, Sha256 = f.Sha256, SizeBytes = f.SizeBytes }).ToList(),
            Metrics = (p.Metrics ?? new Dictionary<string, double>()).Select(kv => new VersionMetric { Name = kv.Key, Value = kv.Value }).ToList(),
        };
    }

    private static string Summary(PeftConfig c) => c switch
    {
        LoraFamilyConfig l => $"targets {l.TargetModules?.ToString() ?? "(model defaults)"}",
        Ia3Config i => $"targets {i.TargetModules?.ToString() ?? "(model defaults)"}, feed-forward {i.FeedforwardModules?.ToString() ?? "(model defaults)"}",
        PromptLearningConfig pl => $"{pl.NumVirtualTokens} virtual tokens",
        _ => c.PeftType,
    };

    private static string Truncate(string s, int n) => s.Length <= n ? s : s[..n];
}
