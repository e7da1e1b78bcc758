namespace Peft.Storage.Model;

/// <summary>A hub user (authentication and roles are the security issue's; the catalog records names).</summary>
public sealed class User
{
    public int Id { get; set; }
    public required string Name { get; set; }
    public string? DisplayName { get; set; }
    /// <summary>reader, writer or admin.</summary>
    public required string Role { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? DisabledAt { get; set; }
    public List<ApiKey> ApiKeys { get; set; } = [];
}

/// <summary>An API key: only its prefix (to find it) and sha256 (to check it) are stored, never the key.</summary>
public sealed class ApiKey
{
    public int Id { get; set; }
    public int UserId { get; set; }
    public User User { get; set; } = null!;
    public required string Name { get; set; }
    public required string Prefix { get; set; }
    public required string KeySha256 { get; set; }
    /// <summary>Space-separated scopes, e.g. "catalog:read catalog:write".</summary>
    public required string Scopes { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? ExpiresAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
    public DateTimeOffset? LastUsedAt { get; set; }
}
