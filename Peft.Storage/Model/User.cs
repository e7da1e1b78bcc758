namespace Peft.Storage.Model;

/// <summary>A hub user: signs in with a password (ASP.NET Core Identity hash) and acts through API keys.</summary>
public sealed class User
{
    public int Id { get; set; }
    public required string Name { get; set; }
    public string? DisplayName { get; set; }
    /// <summary>viewer, trainer or admin (each includes the one before).</summary>
    public required string Role { get; set; }
    /// <summary>ASP.NET Core Identity <c>PasswordHasher</c> output; null for a user who only has API keys.</summary>
    public string? PasswordHash { get; set; }
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
    /// <summary>Space-separated scopes out of read, infer, train, admin (capped by the owner's role when used).</summary>
    public required string Scopes { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? ExpiresAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
    public DateTimeOffset? LastUsedAt { get; set; }
}
