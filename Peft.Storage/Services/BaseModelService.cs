using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Peft.Core;
using Peft.Core.Validation;
using Peft.Storage.Infrastructure;
using Peft.Storage.Model;

namespace Peft.Storage.Services;

/// <summary>Registers base model folders (headers only: architecture, parameter count, dtype, content hash) and finds them.</summary>
public sealed class BaseModelService(CatalogDbContext db, IOptions<CatalogOptions> options, BaseModelHeaderCache cache)
{
    public Task<List<BaseModel>> ListAsync(CancellationToken ct) => db.BaseModels.AsNoTracking().OrderBy(b => b.Name).ToListAsync(ct);

    public async Task<BaseModel> GetAsync(string name, CancellationToken ct) =>
        await db.BaseModels.AsNoTracking().FirstOrDefaultAsync(b => b.Name == name, ct)
        ?? throw new PeftUserException($"base model '{name}' not found", UserErrorKind.NotFound);

    /// <summary>
    /// The base an adapter names: its catalog name, or (for <c>base_model_name_or_path</c> written as a path or hub id)
    /// the last path segment, e.g. <c>/work/models/peft-demo</c> → <c>peft-demo</c>.
    /// </summary>
    public async Task<BaseModel?> FindForAdapterAsync(string nameOrPath, CancellationToken ct)
    {
        var exact = await db.BaseModels.AsNoTracking().FirstOrDefaultAsync(b => b.Name == nameOrPath, ct);
        if (exact is not null) return exact;
        var last = nameOrPath.TrimEnd('/', '\\').Split('/', '\\')[^1];
        return last == nameOrPath ? null : await db.BaseModels.AsNoTracking().FirstOrDefaultAsync(b => b.Name == last, ct);
    }

    public Task<BaseModelHeaders> HeadersAsync(BaseModel model, CancellationToken ct) => cache.GetAsync(model, ct);

    /// <summary>
    /// Registers <paramref name="folder"/> (relative to Hub:ModelsDir, or absolute for the bundled defaults) as
    /// <paramref name="name"/>. The folder must hold config.json and safetensors weights with valid headers.
    /// </summary>
    public async Task<BaseModel> RegisterAsync(string name, string folder, string? description, string? user, CancellationToken ct,
        bool allowOutsideModelsDir = false)
    {
        CatalogNames.Check(name, "base model");
        var modelsDir = Path.GetFullPath(options.Value.ModelsDir);
        var full = Path.GetFullPath(folder, modelsDir);
        if (!allowOutsideModelsDir && !full.StartsWith(modelsDir.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new PeftUserException($"folder '{folder}' is outside the models folder (Hub:ModelsDir)", UserErrorKind.BadRequest);
        if (!Directory.Exists(full)) throw new PeftUserException($"model folder '{folder}' not found", UserErrorKind.NotFound);
        if (await db.BaseModels.AnyAsync(b => b.Name == name, ct))
            throw new PeftUserException($"base model '{name}' already exists", UserErrorKind.Conflict);

        var headers = BaseModelHeaders.Load(full);
        var files = new List<(string, string)> { ("config.json", await Hashing.Sha256FileAsync(Path.Combine(full, "config.json"), ct)) };
        foreach (var f in headers.WeightFiles) files.Add((Path.GetFileName(f), await Hashing.Sha256FileAsync(f, ct)));
        var architectures = headers.Config.Json["architectures"]?.AsArray();
        var model = new BaseModel
        {
            Name = name,
            Folder = full,
            ModelType = headers.Config.ModelType,
            Architecture = architectures is { Count: > 0 } ? architectures[0]!.GetValue<string>() : headers.Config.ModelType,
            ParameterCount = headers.ParameterCount,
            DType = headers.DominantDType,
            ContentSha256 = Hashing.Combine(files),
            Description = description,
            CreatedAt = DateTimeOffset.UtcNow,
            CreatedBy = user,
        };
        db.BaseModels.Add(model);
        await db.SaveChangesAsync(ct);
        return model;
    }
}

/// <summary>Base model headers by folder and content hash, read once per process (they are checked on every upload).</summary>
public sealed class BaseModelHeaderCache
{
    private readonly ConcurrentDictionary<(string, string), Lazy<BaseModelHeaders>> _cache = new();

    public Task<BaseModelHeaders> GetAsync(BaseModel model, CancellationToken ct) =>
        Task.Run(() => _cache.GetOrAdd((model.Folder, model.ContentSha256), k => new Lazy<BaseModelHeaders>(() => BaseModelHeaders.Load(k.Item1), LazyThreadSafetyMode.PublicationOnly)).Value, ct);
}
