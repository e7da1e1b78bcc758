using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Peft.Storage.Infrastructure;

namespace Peft.Storage.Services;

/// <summary>
/// First-start defaults, so a new user has something to fine-tune at once: the bundled demo model and (when imported)
/// MiniLM as base models, the committed corpora as datasets. Each is added only when missing and present on disk.
/// </summary>
public sealed class CatalogSeeder(CatalogDbContext db, BaseModelService baseModels, DatasetService datasets, IOptions<CatalogOptions> options)
{
    public static readonly (string Name, string Folder)[] Models = [("peft-demo", "peft-demo"), ("minilm", "minilm")];
    public static readonly (string Name, string File, string Description)[] Corpora =
    [
        ("austen", "austen.jsonl", "Jane Austen's novels, one paragraph per row (public domain)"),
        ("sotu-pre1900", "sotu_pre1900.jsonl", "State of the Union addresses before 1900, one paragraph per row (public domain)"),
    ];

    public async Task SeedAsync(CancellationToken ct)
    {
        foreach (var (name, folder) in Models)
        {
            var path = Path.Combine(options.Value.ModelsDir, folder);
            if (!File.Exists(Path.Combine(path, "config.json")) || await db.BaseModels.AnyAsync(b => b.Name == name, ct)) continue;
            await baseModels.RegisterAsync(name, path, name == "peft-demo" ? "Bundled 6.5 M-parameter demo model (see its model card)" : null,
                "system", ct, allowOutsideModelsDir: true);
        }
        foreach (var (name, file, description) in Corpora)
        {
            var path = Path.Combine(options.Value.CorporaDir, file);
            if (!File.Exists(path) || await db.Datasets.AnyAsync(d => d.Name == name, ct)) continue;
            await datasets.RegisterFileAsync(name, path, description, ct);
        }
    }
}
