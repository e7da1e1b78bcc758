using System.Security.Cryptography;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Peft.Core;
using Peft.Storage.Infrastructure;
using Peft.Storage.Model;

namespace Peft.Web.Security;

/// <summary>Users and their passwords (ASP.NET Core Identity's PBKDF2 hasher over the catalog's User rows).</summary>
public sealed class AccountService(CatalogDbContext db, TimeProvider clock)
{
    public const int MinPasswordLength = 8;
    private static readonly PasswordHasher<User> Hasher = new();

    public Task<List<User>> ListAsync(CancellationToken ct) => db.Users.AsNoTracking().OrderBy(u => u.Name).ToListAsync(ct);

    /// <summary>The user when the name and password match an enabled account; null otherwise (no hint which part was wrong).</summary>
    public async Task<User?> CheckPasswordAsync(string name, string password, CancellationToken ct)
    {
        var user = await db.Users.FirstOrDefaultAsync(u => u.Name == name, ct);
        if (user?.PasswordHash is null || user.DisabledAt is not null) return null;
        var result = Hasher.VerifyHashedPassword(user, user.PasswordHash, password);
        if (result == PasswordVerificationResult.Failed) return null;
        if (result == PasswordVerificationResult.SuccessRehashNeeded)
        {
            user.PasswordHash = Hasher.HashPassword(user, password);
            await db.SaveChangesAsync(ct);
        }
        return user;
    }

    public async Task<User> CreateAsync(string name, string role, string password, CancellationToken ct)
    {
        name = name.Trim();
        if (name.Length is 0 or > 100 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '@'))
            throw new PeftUserException($"user name '{name}' must be 1-100 letters, digits, '-', '_', '.' or '@'", UserErrorKind.Invalid);
        if (!HubRoles.All.Contains(role))
            throw new PeftUserException($"role '{role}' must be one of {string.Join(", ", HubRoles.All)}", UserErrorKind.Invalid);
        CheckPassword(password);
        if (await db.Users.AnyAsync(u => u.Name == name, ct))
            throw new PeftUserException($"user '{name}' already exists", UserErrorKind.Conflict);
        var user = new User { Name = name, Role = role, CreatedAt = clock.GetUtcNow() };
        user.PasswordHash = Hasher.HashPassword(user, password);
        db.Users.Add(user);
        await db.SaveChangesAsync(ct);
        return user;
    }

    public async Task SetRoleAsync(int userId, string role, CancellationToken ct)
    {
        if (!HubRoles.All.Contains(role))
            throw new PeftUserException($"role '{role}' must be one of {string.Join(", ", HubRoles.All)}", UserErrorKind.Invalid);
        var user = await db.Users.FindAsync([userId], ct) ?? throw new PeftUserException($"user {userId} not found", UserErrorKind.NotFound);
        if (user.Role == HubRoles.Admin && role != HubRoles.Admin
            && !await db.Users.AnyAsync(u => u.Id != userId && u.Role == HubRoles.Admin && u.DisabledAt == null, ct))
            throw new PeftUserException("the last admin cannot lose the admin role", UserErrorKind.Conflict);
        user.Role = role;
        await db.SaveChangesAsync(ct);
    }

    /// <summary>
    /// First run: when no admin exists, creates <c>admin</c> with <paramref name="configuredPassword"/> or a generated
    /// one. Returns the generated password (to show once), or null when none was generated or nothing was created.
    /// </summary>
    public async Task<(bool Created, string? GeneratedPassword)> EnsureAdminAsync(string? configuredPassword, CancellationToken ct)
    {
        if (await db.Users.AnyAsync(u => u.Role == HubRoles.Admin, ct)) return (false, null);
        var generated = string.IsNullOrEmpty(configuredPassword) ? GeneratePassword() : null;
        await CreateAsync("admin", HubRoles.Admin, configuredPassword ?? generated!, ct);
        return (true, generated);
    }

    private static void CheckPassword(string password)
    {
        if (password.Length < MinPasswordLength)
            throw new PeftUserException($"password must have at least {MinPasswordLength} characters", UserErrorKind.Invalid);
    }

    private static string GeneratePassword() =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)).Replace('+', '-').Replace('/', '_');
}
