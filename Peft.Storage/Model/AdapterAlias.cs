namespace Peft.Storage.Model;

/// <summary>A movable name (<c>production</c>, <c>staging</c>, any) for one version of an adapter.</summary>
public sealed class AdapterAlias
{
    public int Id { get; set; }
    public int AdapterId { get; set; }
    public required string Name { get; set; }
    public int VersionId { get; set; }
    public AdapterVersion Version { get; set; } = null!;
    public DateTimeOffset UpdatedAt { get; set; }
    public string? UpdatedBy { get; set; }
}

/// <summary>One move of an alias; rows are only ever added (the context refuses updates and deletes).</summary>
public sealed class AliasMove
{
    public long Id { get; set; }
    public int AdapterId { get; set; }
    public required string AliasName { get; set; }
    /// <summary>Version number before the move; null when the alias was created.</summary>
    public int? FromVersion { get; set; }
    public int ToVersion { get; set; }
    public string? MovedBy { get; set; }
    public DateTimeOffset MovedAt { get; set; }
}
