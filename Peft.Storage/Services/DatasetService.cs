using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Peft.Core;
using Peft.Core.Data;
using Peft.Storage.Blobs;
using Peft.Storage.Infrastructure;
using Peft.Storage.Model;

namespace Peft.Storage.Services;

/// <summary>
/// Datasets: read with the trainer's own reader (so a file that registers is a file that trains), format detected
/// from the first row, rows counted, sha256 and a preview kept. Uploads go to the blob store.
/// </summary>
public sealed class DatasetService(CatalogDbContext db, IBlobStore blobs, IOptions<CatalogOptions> options)
{
    public const int PreviewRows = 5;
    private static readonly string[] Extensions = [".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".txt"];

    public Task<List<Dataset>> ListAsync(CancellationToken ct) => db.Datasets.AsNoTracking().OrderBy(d => d.Name).ToListAsync(ct);

    public async Task<Dataset> GetAsync(string name, CancellationToken ct) =>
        await db.Datasets.AsNoTracking().FirstOrDefaultAsync(d => d.Name == name, ct)
        ?? throw new PeftUserException($"dataset '{name}' not found", UserErrorKind.NotFound);

    /// <summary>Uploads a data file: staged under its size limit, parsed, then stored by content hash.</summary>
    public async Task<Dataset> UploadAsync(string name, string fileName, Stream content, string? description, string? user, CancellationToken ct)
    {
        CatalogNames.Check(name, "dataset");
        var safeName = Path.GetFileName(fileName ?? "");
        var ext = Path.GetExtension(safeName).ToLowerInvariant();
        if (safeName.Length == 0 || !Extensions.Contains(ext))
            throw new PeftUserException($"dataset file '{fileName}' must end in one of {string.Join(", ", Extensions)}", UserErrorKind.BadRequest);
        if (await db.Datasets.AnyAsync(d => d.Name == name, ct))
            throw new PeftUserException($"dataset '{name}' already exists", UserErrorKind.Conflict);
        using var staging = new UploadStaging(options.Value.DataDir);
        var path = await staging.SaveAsync(content, "data" + ext, options.Value.Uploads.MaxDatasetBytes, $"dataset '{safeName}'", ct);
        var dataset = Describe(name, safeName, path, description, user);
        await using (var stream = File.OpenRead(path))
        {
            var blob = await blobs.PutAsync(stream, ct);
            dataset.Sha256 = blob.Sha256;
        }
        db.Datasets.Add(dataset);
        await db.SaveChangesAsync(ct);
        return dataset;
    }

    /// <summary>Registers a file that stays where it is (the bundled corpora).</summary>
    public async Task<Dataset> RegisterFileAsync(string name, string path, string? description, CancellationToken ct)
    {
        CatalogNames.Check(name, "dataset");
        var dataset = Describe(name, Path.GetFileName(path), path, description, "system");
        dataset.SourcePath = Path.GetFullPath(path);
        dataset.Sha256 = await Hashing.Sha256FileAsync(path, ct);
        db.Datasets.Add(dataset);
        await db.SaveChangesAsync(ct);
        return dataset;
    }

    /// <summary>Where the dataset's bytes are: its blob, or its own file for bundled ones.</summary>
    public string? LocalPath(Dataset d) => d.SourcePath ?? blobs.TryGetLocalPath(d.Sha256);

    private static Dataset Describe(string name, string fileName, string path, string? description, string? user)
    {
        // The reader picks its parser by extension; a staged upload keeps the original one.
        List<DataRecord> rows;
        try { rows = DataFileReader.Read(path); }
        catch (DataFormatException e) { throw new PeftUserException($"dataset '{fileName}': {e.Message.Replace(path, fileName)}", UserErrorKind.Invalid); }
        if (rows.Count == 0) throw new PeftUserException($"dataset '{fileName}' has no rows", UserErrorKind.Invalid);
        DataFormat format;
        try { format = DataFormats.Detect(rows[0]); }
        catch (DataFormatException e) { throw new PeftUserException($"dataset '{fileName}': {e.Message.Replace(path, fileName)}", UserErrorKind.Invalid); }
        var preview = new JsonArray(rows.Take(PreviewRows).Select(r => (JsonNode?)r.Fields.DeepClone()).ToArray());
        return new Dataset
        {
            Name = name,
            FileName = fileName,
            Format = format.ToString(),
            RowCount = rows.Count,
            SizeBytes = new FileInfo(path).Length,
            Sha256 = "",
            PreviewJson = preview.ToJsonString(),
            Description = description,
            CreatedAt = DateTimeOffset.UtcNow,
            CreatedBy = user,
        };
    }
}
