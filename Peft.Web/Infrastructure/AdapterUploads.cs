using Microsoft.Extensions.Options;
using Peft.Storage;
using Peft.Storage.Model;
using Peft.Storage.Services;

namespace Peft.Web.Infrastructure;

/// <summary>The browser app's zip upload: staged on disk under the same limit as REST, then registered by the catalog.</summary>
public sealed class AdapterUploads(AdapterCatalog catalog, IOptions<CatalogOptions> options)
{
    public long MaxBytes => options.Value.Uploads.MaxAdapterRequestBytes;

    public async Task<AdapterVersion> UploadZipAsync(string adapterName, Stream zip, string? baseModel, VersionProvenance provenance, CancellationToken ct)
    {
        using var staging = new UploadStaging(options.Value.DataDir);
        var path = await staging.SaveAsync(zip, "upload.zip", MaxBytes, "the zip", ct);
        return await catalog.RegisterZipAsync(adapterName, path, baseModel, provenance, ct);
    }
}
