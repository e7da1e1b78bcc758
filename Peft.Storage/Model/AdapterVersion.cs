namespace Peft.Storage.Model;

/// <summary>pending: row written, files being stored; ready: files complete and verified; failed: never became ready.</summary>
public enum VersionState
{
    Pending,
    Ready,
    Failed,
}

/// <summary>One immutable version of an adapter: its files (by sha256), summary, lineage and metrics.</summary>
public sealed class AdapterVersion
{
    public int Id { get; set; }
    public int AdapterId { get; set; }
    public Adapter Adapter { get; set; } = null!;
    /// <summary>1, 2, 3 ... per adapter, gapless (a failed registration keeps its number).</summary>
    public int Number { get; set; }
    public VersionState State { get; set; }
    public string? StatusMessage { get; set; }
    public required string PeftType { get; set; }
    public required string TaskType { get; set; }
    /// <summary>LoRA-family rank and alpha; null for other methods.</summary>
    public int? Rank { get; set; }
    public double? Alpha { get; set; }
    /// <summary>Human summary of what it adapts: target modules, or virtual tokens for prompt methods.</summary>
    public required string TargetsSummary { get; set; }
    /// <summary>sha256 over the files' names and hashes; identifies the content of the version.</summary>
    public required string ContentSha256 { get; set; }
    public long SizeBytes { get; set; }
    /// <summary>The adapter_config.json as stored (parsed and re-checked on upload).</summary>
    public required string AdapterConfigJson { get; set; }
    /// <summary>The resolved training configuration when a job produced it.</summary>
    public string? TrainingConfigJson { get; set; }
    /// <summary>Id of the job that produced it (the jobs tables link it).</summary>
    public long? SourceJobId { get; set; }
    public int? SourceDatasetId { get; set; }
    public Dataset? SourceDataset { get; set; }
    /// <summary>The dataset's sha256 at training time (the dataset row may later be replaced).</summary>
    public string? SourceDatasetSha256 { get; set; }
    /// <summary>The version training continued from.</summary>
    public int? ParentVersionId { get; set; }
    public AdapterVersion? ParentVersion { get; set; }
    /// <summary>JSON recipe when combined from other versions: sources, weights, combination type.</summary>
    public string? MergeRecipeJson { get; set; }
    public string? Description { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public string? CreatedBy { get; set; }
    /// <summary>Soft delete: the row and its history stay; files become collectable.</summary>
    public DateTimeOffset? DeletedAt { get; set; }
    public string? DeletedBy { get; set; }
    public List<AdapterFile> Files { get; set; } = [];
    public List<VersionMetric> Metrics { get; set; } = [];
}

/// <summary>One file of a version (adapter_config.json, adapter_model.safetensors), stored by content hash.</summary>
public sealed class AdapterFile
{
    public int Id { get; set; }
    public int VersionId { get; set; }
    public required string FileName { get; set; }
    public required string Sha256 { get; set; }
    public long SizeBytes { get; set; }
}

/// <summary>An evaluation metric of a version (one row each so lists can filter and sort by it).</summary>
public sealed class VersionMetric
{
    public int Id { get; set; }
    public int VersionId { get; set; }
    public required string Name { get; set; }
    public double Value { get; set; }
}
