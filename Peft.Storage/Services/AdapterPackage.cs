using System.Globalization;
using System.IO.Compression;
using System.Text;
using Microsoft.Extensions.Options;
using Peft.Core;
using Peft.Core.IO;
using Peft.Storage.Blobs;
using Peft.Storage.Model;
using Peft.Storage.Validation;

namespace Peft.Storage.Services;

/// <summary>A downloadable file on disk with its sha256 (the ETag).</summary>
public sealed record PackagedFile(string Path, string FileName, string Sha256, string ContentType, DateTimeOffset LastModified);

/// <summary>
/// Builds what a download returns: the HF PEFT folder as a zip (adapter_config.json, adapter_model.safetensors and a
/// generated README.md model card), or one stored file. The zip is deterministic (fixed entry order and timestamps,
/// card built from the immutable version), so it is cached once per version and its hash is a stable ETag.
/// </summary>
public sealed class AdapterPackage(IBlobStore blobs, IOptions<CatalogOptions> options)
{
    public const string ReadmeFile = "README.md";
    private static readonly DateTimeOffset ZipTime = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public async Task<PackagedFile> FileAsync(AdapterVersion version, string fileName, CancellationToken ct)
    {
        if (fileName == ReadmeFile)
        {
            var bytes = Encoding.UTF8.GetBytes(ModelCard.Render(version));
            var sha = Hashing.Sha256(bytes);
            var path = await CacheAsync($"{version.Id}-{sha}.md", p => File.WriteAllBytesAsync(p, bytes, ct));
            return new PackagedFile(path, ReadmeFile, sha, "text/markdown; charset=utf-8", version.CreatedAt);
        }
        var file = version.Files.FirstOrDefault(f => f.FileName == fileName)
            ?? throw new PeftUserException($"version {version.Number} has no file '{fileName}' (files: {string.Join(", ", version.Files.Select(f => f.FileName).Append(ReadmeFile))})", UserErrorKind.NotFound);
        var local = blobs.TryGetLocalPath(file.Sha256)
            ?? throw new InvalidOperationException($"blob {file.Sha256} of a ready version is missing");
        var type = fileName.EndsWith(".json", StringComparison.Ordinal) ? "application/json" : "application/octet-stream";
        return new PackagedFile(local, fileName, file.Sha256, type, version.CreatedAt);
    }

    public async Task<PackagedFile> ZipAsync(AdapterVersion version, CancellationToken ct)
    {
        var dir = Path.Combine(options.Value.DataDir, "cache", "zips");
        Directory.CreateDirectory(dir);
        var prefix = $"{version.Id}-{version.ContentSha256}-";
        var cached = Directory.EnumerateFiles(dir, prefix + "*.zip").FirstOrDefault();
        if (cached is null)
        {
            var tmp = Path.Combine(dir, $".{Guid.NewGuid():N}.tmp");
            try
            {
                await using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
                {
                    using var zip = new ZipArchive(fs, ZipArchiveMode.Create, leaveOpen: true);
                    foreach (var f in version.Files.OrderBy(f => f.FileName, StringComparer.Ordinal))
                    {
                        await using var src = await blobs.OpenReadAsync(f.Sha256, ct);
                        await AddAsync(zip, f.FileName, src, ct);
                    }
                    await using var card = new MemoryStream(Encoding.UTF8.GetBytes(ModelCard.Render(version)));
                    await AddAsync(zip, ReadmeFile, card, ct);
                }
                var sha = await Hashing.Sha256FileAsync(tmp, ct);
                cached = Path.Combine(dir, $"{prefix}{sha}.zip");
                using (var fs = new FileStream(tmp, FileMode.Open)) fs.Flush(true);
                File.Move(tmp, cached, overwrite: true);
            }
            finally
            {
                if (File.Exists(tmp)) File.Delete(tmp);
            }
        }
        var zipSha = Path.GetFileNameWithoutExtension(cached)[prefix.Length..];
        return new PackagedFile(cached, $"{version.Adapter.Name}-v{version.Number}.zip", zipSha, "application/zip", version.CreatedAt);
    }

    private static async Task AddAsync(ZipArchive zip, string name, Stream content, CancellationToken ct)
    {
        var entry = zip.CreateEntry(name, CompressionLevel.Optimal);
        entry.LastWriteTime = ZipTime;
        await using var dst = await entry.OpenAsync(ct);
        await content.CopyToAsync(dst, ct);
    }

    private async Task<string> CacheAsync(string name, Func<string, Task> write)
    {
        var dir = Path.Combine(options.Value.DataDir, "cache", "cards");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, name);
        if (!File.Exists(path))
        {
            var tmp = path + $".{Guid.NewGuid():N}.tmp";
            await write(tmp);
            File.Move(tmp, path, overwrite: true);
        }
        return path;
    }
}

/// <summary>The README.md model card of a download: HF metadata (base_model, library_name: peft), metrics, lineage.</summary>
public static class ModelCard
{
    public static string Render(AdapterVersion v)
    {
        var a = v.Adapter;
        var sb = new StringBuilder();
        sb.Append("---\n");
        sb.Append("base_model: ").Append(a.BaseModel.Name).Append('\n');
        sb.Append("library_name: peft\n");
        sb.Append("tags:\n- peft\n- ").Append(v.PeftType.ToLowerInvariant()).Append('\n');
        foreach (var t in a.Tags.Order(StringComparer.Ordinal)) sb.Append("- ").Append(t).Append('\n');
        if (v.SourceDataset is { } ds) sb.Append("datasets:\n- ").Append(ds.Name).Append('\n');
        sb.Append("---\n\n");
        sb.Append("# ").Append(a.Name).Append(" v").Append(v.Number).Append("\n\n");
        if (!string.IsNullOrWhiteSpace(v.Description ?? a.Description)) sb.Append(v.Description ?? a.Description).Append("\n\n");
        sb.Append("A ").Append(v.PeftType).Append(" adapter (").Append(v.TaskType).Append(") for `").Append(a.BaseModel.Name)
          .Append("` (").Append(a.BaseModel.Architecture).Append(", base content sha256 `").Append(a.BaseModel.ContentSha256).Append("`).\n\n");
        sb.Append("- ").Append(v.TargetsSummary).Append('\n');
        if (v.Rank is int r) sb.Append("- r = ").Append(r).Append(", lora_alpha = ").Append(Num(v.Alpha ?? 0)).Append('\n');
        sb.Append("- created ").Append(v.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture));
        if (v.CreatedBy is not null) sb.Append(" by ").Append(v.CreatedBy);
        sb.Append("\n\n## Metrics\n\n");
        if (v.Metrics.Count == 0) sb.Append("None recorded.\n");
        else
        {
            sb.Append("| metric | value |\n|---|---|\n");
            foreach (var m in v.Metrics.OrderBy(m => m.Name, StringComparer.Ordinal)) sb.Append("| ").Append(m.Name).Append(" | ").Append(Num(m.Value)).Append(" |\n");
        }
        sb.Append("\n## Lineage\n\n");
        sb.Append("- source job: ").Append(v.SourceJobId?.ToString(CultureInfo.InvariantCulture) ?? "none (uploaded)").Append('\n');
        if (v.SourceDataset is { } d) sb.Append("- dataset: ").Append(d.Name).Append(" (sha256 `").Append(v.SourceDatasetSha256).Append("`)\n");
        if (v.ParentVersion is { } p) sb.Append("- continued from: ").Append(a.Name).Append('@').Append(p.Number).Append('\n');
        if (v.MergeRecipeJson is not null) sb.Append("- merge recipe: `").Append(v.MergeRecipeJson).Append("`\n");
        sb.Append("\n## Files\n\n| file | sha256 | bytes |\n|---|---|---|\n");
        foreach (var f in v.Files.OrderBy(f => f.FileName, StringComparer.Ordinal))
            sb.Append("| ").Append(f.FileName).Append(" | `").Append(f.Sha256).Append("` | ").Append(f.SizeBytes).Append(" |\n");
        sb.Append("\nLoad it with PEFT: `PeftModel.from_pretrained(AutoModel...from_pretrained(\"").Append(a.BaseModel.Name)
          .Append("\"), \"<this folder>\")`.\n");
        return sb.ToString();
    }

    private static string Num(double d) => d.ToString("G6", CultureInfo.InvariantCulture);
}
