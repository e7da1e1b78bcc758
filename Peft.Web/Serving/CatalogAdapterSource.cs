using System.Globalization;
using Microsoft.EntityFrameworkCore;
using Peft.Core;
using Peft.Storage.Blobs;
using Peft.Storage.Infrastructure;
using Peft.Storage.Model;
using Peft.Storage.Services;
using Peft.Training.Serving.Adapters;

namespace Peft.Web.Serving;

/// <summary>
/// Adapters from the hub's catalog: <c>name</c> (latest ready version), <c>name@3</c>, <c>name@production</c>, resolved
/// by <see cref="AdapterCatalog.ResolveAsync"/> on every request, so moving an alias or registering a version changes
/// what the next request gets while running sequences keep the version (cache key <c>name@N</c>) they leased. A version's
/// files are copied out of the blob store once into <c>{dir}/{content sha256}/</c> (written to a temporary folder,
/// then renamed, so a folder there is always complete). Names the catalog does not know go to <paramref name="fallback"/>
/// (the local adapter folder) when there is one.
/// </summary>
public sealed class CatalogAdapterSource(IServiceScopeFactory scopes, IBlobStore blobs, string dir, IAdapterSource? fallback) : IAdapterSource
{
    public async ValueTask<AdapterLocation> ResolveAsync(AdapterReference reference, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<CatalogDbContext>();
        if (fallback is not null && !await db.Adapters.AnyAsync(a => a.Name == reference.Name, ct))
            return await fallback.ResolveAsync(reference, ct);
        var version = await scope.ServiceProvider.GetRequiredService<AdapterCatalog>().ResolveAsync(reference.ToString(), ct);
        string folder = await MaterializeAsync(version, ct);
        return new AdapterLocation(reference.Name, version.Number.ToString(CultureInfo.InvariantCulture), folder, version.Adapter.BaseModel.Name);
    }

    public async ValueTask<IReadOnlyList<AdapterLocation>> ListAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var catalog = scope.ServiceProvider.GetRequiredService<AdapterCatalog>();
        var list = new List<AdapterLocation>();
        for (int page = 1; ; page++)
        {
            var result = await catalog.ListAsync(new AdapterQuery { Page = page, PageSize = 200 }, ct);
            foreach (var a in result.Items)
                if (a.Versions.FirstOrDefault() is { } latest)
                    list.Add(new AdapterLocation(a.Name, latest.Number.ToString(CultureInfo.InvariantCulture), "", a.BaseModel.Name));
            if (page * result.PageSize >= result.Total) break;
        }
        if (fallback is not null)
        {
            var known = list.Select(l => l.Name).ToHashSet(StringComparer.Ordinal);
            list.AddRange((await fallback.ListAsync(ct)).Where(l => !known.Contains(l.Name)));
        }
        return list;
    }

    private async Task<string> MaterializeAsync(AdapterVersion version, CancellationToken ct)
    {
        string target = Path.Combine(dir, version.ContentSha256);
        if (Directory.Exists(target)) return target;
        string tmp = Path.Combine(dir, "tmp-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(tmp);
        try
        {
            foreach (var f in version.Files)
            {
                // File names come from the catalog's validated upload; still, never let one leave the folder.
                if (Path.GetFileName(f.FileName) != f.FileName)
                    throw new PeftUserException($"catalog file name '{f.FileName}' of {version.Adapter.Name}@{version.Number} is not a plain name", UserErrorKind.Invalid);
                await using var from = await blobs.OpenReadAsync(f.Sha256, ct);
                await using var to = File.Create(Path.Combine(tmp, f.FileName));
                await from.CopyToAsync(to, ct);
            }
            try
            {
                Directory.Move(tmp, target);
            }
            catch (IOException) when (Directory.Exists(target))
            {
                // Another request materialised the same content first; theirs is complete.
            }
            return target;
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        }
    }
}
