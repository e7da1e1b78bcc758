using Microsoft.EntityFrameworkCore;
using Peft.Core;
using Peft.Storage.Model;

namespace Peft.Storage.Services;

/// <summary>What a garbage collection pass did.</summary>
public sealed record GcReport(int FailedPending, int BlobsDeleted, long BytesFreed, int BlobsKept, int TempFilesDeleted);

public sealed partial class AdapterCatalog
{
    /// <summary>Points <paramref name="alias"/> at version <paramref name="number"/> and appends the move to its history.</summary>
    public async Task<AliasMove?> MoveAliasAsync(string adapterName, string alias, int number, string? user, CancellationToken ct)
    {
        CatalogNames.Check(alias, "alias");
        if (int.TryParse(alias, out _)) throw new PeftUserException($"alias '{alias}' is a number; it would shadow version {alias}", UserErrorKind.BadRequest);
        var adapter = await GetAdapterRowAsync(adapterName, ct);
        var version = await LiveVersions(adapter.Id).FirstOrDefaultAsync(v => v.Number == number, ct)
            ?? throw new PeftUserException($"adapter '{adapterName}' has no version {number}", UserErrorKind.NotFound);
        if (version.State != VersionState.Ready)
            throw new PeftUserException($"version {number} of '{adapterName}' is {version.State.ToString().ToLowerInvariant()}, not ready", UserErrorKind.Conflict);

        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var now = clock.GetUtcNow();
        var row = await db.AdapterAliases.Include(a => a.Version).FirstOrDefaultAsync(a => a.AdapterId == adapter.Id && a.Name == alias, ct);
        int? from = row?.Version.Number;
        if (from == number) return null; // already there: nothing moved, nothing to record
        if (row is null)
            db.AdapterAliases.Add(new AdapterAlias { AdapterId = adapter.Id, Name = alias, VersionId = version.Id, UpdatedAt = now, UpdatedBy = user });
        else
        {
            row.VersionId = version.Id;
            row.UpdatedAt = now;
            row.UpdatedBy = user;
        }
        var move = new AliasMove { AdapterId = adapter.Id, AliasName = alias, FromVersion = from, ToVersion = number, MovedBy = user, MovedAt = now };
        db.AliasMoves.Add(move);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return move;
    }

    /// <summary>Every move of an alias, oldest first.</summary>
    public async Task<List<AliasMove>> AliasHistoryAsync(string adapterName, string alias, CancellationToken ct)
    {
        var adapter = await GetAdapterRowAsync(adapterName, ct);
        var moves = await db.AliasMoves.AsNoTracking().Where(m => m.AdapterId == adapter.Id && m.AliasName == alias)
            .OrderBy(m => m.Id).ToListAsync(ct);
        if (moves.Count == 0) throw new PeftUserException($"adapter '{adapterName}' has no alias '{alias}'", UserErrorKind.NotFound);
        return moves;
    }

    /// <summary>Soft-deletes a version; refused while an alias points at it.</summary>
    public async Task DeleteVersionAsync(string adapterName, int number, string? user, CancellationToken ct)
    {
        var adapter = await GetAdapterRowAsync(adapterName, ct);
        var version = await LiveVersions(adapter.Id).FirstOrDefaultAsync(v => v.Number == number, ct)
            ?? throw new PeftUserException($"adapter '{adapterName}' has no version {number}", UserErrorKind.NotFound);
        var aliases = await db.AdapterAliases.Where(a => a.VersionId == version.Id).Select(a => a.Name).ToListAsync(ct);
        if (aliases.Count > 0)
            throw new PeftUserException($"version {number} of '{adapterName}' is aliased as {string.Join(", ", aliases.Order())}; move the alias first", UserErrorKind.Conflict);
        var changed = await db.AdapterVersions.Where(v => v.Id == version.Id && v.DeletedAt == null && !db.AdapterAliases.Any(a => a.VersionId == v.Id))
            .ExecuteUpdateAsync(s => s.SetProperty(v => v.DeletedAt, clock.GetUtcNow()).SetProperty(v => v.DeletedBy, user), ct);
        if (changed == 0) throw new PeftUserException($"version {number} of '{adapterName}' changed meanwhile; retry", UserErrorKind.Conflict);
    }

    /// <summary>Marks versions pending for longer than Hub:PendingTimeout (a crashed registration) as failed.</summary>
    public Task<int> FailStalePendingAsync(CancellationToken ct) => FailStalePendingAsync(Options.PendingTimeout, ct);

    public Task<int> FailStalePendingAsync(TimeSpan olderThan, CancellationToken ct)
    {
        var cutoff = clock.GetUtcNow() - olderThan;
        return db.AdapterVersions.Where(v => v.State == VersionState.Pending && v.CreatedAt <= cutoff)
            .ExecuteUpdateAsync(s => s.SetProperty(v => v.State, VersionState.Failed)
                .SetProperty(v => v.StatusMessage, "registration did not finish (process stopped before the files were verified)"), ct);
    }

    /// <summary>
    /// Deletes blobs no live version or uploaded dataset references. A blob is kept while a pending version names it
    /// or while it is younger than <paramref name="grace"/> (a registration may be about to reference it).
    /// </summary>
    public async Task<GcReport> CollectGarbageAsync(TimeSpan? pendingTimeout, TimeSpan? grace, CancellationToken ct)
    {
        var failed = await FailStalePendingAsync(pendingTimeout ?? Options.PendingTimeout, ct);
        var referenced = new HashSet<string>(await db.AdapterFiles.AsNoTracking()
            .Where(f => db.AdapterVersions.Any(v => v.Id == f.VersionId && v.DeletedAt == null && v.State != VersionState.Failed))
            .Select(f => f.Sha256).Distinct().ToListAsync(ct), StringComparer.Ordinal);
        referenced.UnionWith(await db.Datasets.AsNoTracking().Where(d => d.SourcePath == null).Select(d => d.Sha256).ToListAsync(ct));
        var cutoff = clock.GetUtcNow() - (grace ?? Options.GcGracePeriod);
        int deleted = 0, kept = 0;
        long bytes = 0;
        await foreach (var blob in blobs.ListAsync(ct))
        {
            if (referenced.Contains(blob.Sha256) || blob.WrittenAt > cutoff)
            {
                kept++;
                continue;
            }
            await blobs.DeleteAsync(blob.Sha256, ct);
            deleted++;
            bytes += blob.Size;
        }
        var temps = await blobs.CleanTemporaryAsync(grace ?? Options.GcGracePeriod, ct);
        return new GcReport(failed, deleted, bytes, kept, temps);
    }
}
