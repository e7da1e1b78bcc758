using System.Security.Cryptography;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Peft.Core;
using Peft.Storage.Infrastructure;
using Peft.Storage.Model;

namespace Peft.Web.Security;

/// <summary>A key as just created: the secret exists only in this object (the database keeps its sha256).</summary>
public sealed record CreatedApiKey(ApiKey Key, string Secret);

/// <summary>
/// API keys: <c>peft_{prefix}_{secret}</c>. The prefix (stored, unique) finds the row; the sha256 of the whole key is
/// compared in constant time. Keys are shown once, revoked (never deleted) so their use stays attributable.
/// </summary>
public sealed class ApiKeyService(CatalogDbContext db, TimeProvider clock)
{
    private const string KeyStart = "peft_";

    public Task<List<ApiKey>> ListAsync(int userId, CancellationToken ct) =>
        db.ApiKeys.AsNoTracking().Where(k => k.UserId == userId).OrderByDescending(k => k.Id).ToListAsync(ct);

    public async Task<CreatedApiKey> CreateAsync(int userId, string name, IReadOnlyCollection<string> scopes, CancellationToken ct)
    {
        name = name.Trim();
        if (name.Length is 0 or > 100) throw new PeftUserException("key name must have 1-100 characters", UserErrorKind.Invalid);
        if (scopes.Count == 0) throw new PeftUserException("pick at least one scope", UserErrorKind.Invalid);
        var user = await db.Users.FindAsync([userId], ct) ?? throw new PeftUserException($"user {userId} not found", UserErrorKind.NotFound);
        var unknown = scopes.Where(s => !HubScopes.All.Contains(s)).ToList();
        if (unknown.Count > 0)
            throw new PeftUserException($"unknown scope(s) {string.Join(", ", unknown)}; scopes are {string.Join(", ", HubScopes.All)}", UserErrorKind.Invalid);
        var beyond = scopes.Where(s => !HubRoles.ScopesOf(user.Role).Contains(s)).ToList();
        if (beyond.Count > 0)
            throw new PeftUserException($"role '{user.Role}' cannot grant scope(s) {string.Join(", ", beyond)}", UserErrorKind.Invalid);

        var prefix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        var secret = $"{KeyStart}{prefix}_{Base64Url(RandomNumberGenerator.GetBytes(32))}";
        var key = new ApiKey
        {
            UserId = userId, Name = name, Prefix = prefix, KeySha256 = Sha256(secret),
            Scopes = string.Join(' ', HubScopes.All.Where(scopes.Contains)), CreatedAt = clock.GetUtcNow(),
        };
        db.ApiKeys.Add(key);
        await db.SaveChangesAsync(ct);
        return new CreatedApiKey(key, secret);
    }

    /// <summary>Revokes a key of <paramref name="userId"/> (admins may revoke anyone's). Revoking twice is a no-op.</summary>
    public async Task RevokeAsync(int userId, int keyId, bool asAdmin, CancellationToken ct)
    {
        var key = await db.ApiKeys.FirstOrDefaultAsync(k => k.Id == keyId && (asAdmin || k.UserId == userId), ct)
            ?? throw new PeftUserException($"API key {keyId} not found", UserErrorKind.NotFound);
        key.RevokedAt ??= clock.GetUtcNow();
        await db.SaveChangesAsync(ct);
    }

    /// <summary>The owner and key for a presented secret, or null when unknown, revoked, expired or the owner is disabled.</summary>
    public async Task<(User User, ApiKey Key)?> AuthenticateAsync(string presented, CancellationToken ct)
    {
        if (!presented.StartsWith(KeyStart, StringComparison.Ordinal)) return null;
        var rest = presented.AsSpan(KeyStart.Length);
        var sep = rest.IndexOf('_');
        if (sep <= 0) return null;
        var prefix = rest[..sep].ToString();
        var key = await db.ApiKeys.Include(k => k.User).FirstOrDefaultAsync(k => k.Prefix == prefix, ct);
        if (key is null) return null;
        var expected = Encoding.ASCII.GetBytes(key.KeySha256);
        var actual = Encoding.ASCII.GetBytes(Sha256(presented));
        if (!CryptographicOperations.FixedTimeEquals(expected, actual)) return null;
        var now = clock.GetUtcNow();
        if (key.RevokedAt is not null || key.ExpiresAt <= now || key.User.DisabledAt is not null) return null;
        // Last use to the minute is enough and keeps reads from writing on every request.
        if (key.LastUsedAt is null || now - key.LastUsedAt > TimeSpan.FromMinutes(1))
        {
            key.LastUsedAt = now;
            await db.SaveChangesAsync(ct);
        }
        return (key.User, key);
    }

    /// <summary>
    /// The admin account when <paramref name="presented"/> is the key provisioned from configuration
    /// (<c>Hub:BootstrapApiKey</c>, like vLLM's <c>--api-key</c>, for automation before anyone has signed in); compared
    /// in constant time, never stored.
    /// </summary>
    public async Task<User?> AuthenticateBootstrapAsync(string presented, string? configured, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(configured)) return null;
        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(configured));
        var actual = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        if (!CryptographicOperations.FixedTimeEquals(expected, actual)) return null;
        return await db.Users.FirstOrDefaultAsync(u => u.Name == "admin" && u.DisabledAt == null, ct);
    }

    private static string Sha256(string s) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(s)));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
