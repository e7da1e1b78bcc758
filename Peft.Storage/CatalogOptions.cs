namespace Peft.Storage;

/// <summary>Hub settings (section <c>Hub</c>); defaults are also written out in Peft.Web's appsettings.json.</summary>
public sealed class CatalogOptions
{
    public const string Section = "Hub";

    /// <summary>Folder for the SQLite database, the blob store and caches. Relative paths are under the content root.</summary>
    public string DataDir { get; set; } = "hub-data";

    /// <summary>Folder of base model folders; <c>POST /api/base-models</c> registers folders under it.</summary>
    public string ModelsDir { get; set; } = "models";

    /// <summary>Folder of the bundled corpora registered on first start (austen.jsonl, sotu_pre1900.jsonl).</summary>
    public string CorporaDir { get; set; } = "data";

    /// <summary>Register the bundled demo model, MiniLM (when imported) and corpora on first start.</summary>
    public bool SeedDefaults { get; set; } = true;

    /// <summary>Sqlite (default, file under DataDir) or Postgres (uses ConnectionStrings:Catalog).</summary>
    public DatabaseProvider DatabaseProvider { get; set; } = DatabaseProvider.Sqlite;

    public UploadLimits Uploads { get; set; } = new();

    /// <summary>A version still pending after this long belongs to a crashed registration and is marked failed.</summary>
    public TimeSpan PendingTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>Blobs and temp files younger than this are never collected (a registration may be about to reference them).</summary>
    public TimeSpan GcGracePeriod { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Fault injection for the crash test: when set, a registration creates this file after its blobs are written and
    /// waits there (before the row becomes ready) until the process is killed. Never set in production.
    /// </summary>
    public string? PauseAfterBlobWriteMarker { get; set; }
}

public enum DatabaseProvider
{
    Sqlite,
    Postgres,
}

/// <summary>Size limits for uploads; a request over any of them gets 413.</summary>
public sealed class UploadLimits
{
    /// <summary>Whole adapter upload request (zip or the two files).</summary>
    public long MaxAdapterRequestBytes { get; set; } = 512L << 20;
    /// <summary>adapter_model.safetensors, after unpacking.</summary>
    public long MaxAdapterWeightsBytes { get; set; } = 512L << 20;
    /// <summary>adapter_config.json.</summary>
    public long MaxConfigBytes { get; set; } = 1L << 20;
    /// <summary>Entries in an uploaded zip.</summary>
    public int MaxZipEntries { get; set; } = 16;
    /// <summary>Compressed-to-unpacked ratio above which an entry is treated as a zip bomb.</summary>
    public int MaxCompressionRatio { get; set; } = 200;
    /// <summary>Dataset upload request.</summary>
    public long MaxDatasetBytes { get; set; } = 1L << 30;
}
