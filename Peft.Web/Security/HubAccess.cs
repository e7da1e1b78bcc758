using System.Security.Claims;
using Peft.Storage.Model;

namespace Peft.Web.Security;

/// <summary>Roles a user can have; each includes the rights of the one before.</summary>
public static class HubRoles
{
    public const string Viewer = "viewer";
    public const string Trainer = "trainer";
    public const string Admin = "admin";
    public static readonly IReadOnlyList<string> All = [Viewer, Trainer, Admin];

    /// <summary>The scopes a role may exercise: an API key's scopes are capped by its owner's role.</summary>
    public static IReadOnlyList<string> ScopesOf(string role) => role switch
    {
        Viewer => [HubScopes.Read, HubScopes.Infer],
        Trainer => [HubScopes.Read, HubScopes.Infer, HubScopes.Train],
        Admin => HubScopes.All,
        _ => [],
    };
}

/// <summary>What an API key (or a signed-in session) may do.</summary>
public static class HubScopes
{
    public const string Read = "read";
    public const string Infer = "infer";
    public const string Train = "train";
    public const string Admin = "admin";
    public static readonly IReadOnlyList<string> All = [Read, Infer, Train, Admin];
}

/// <summary>Authorization policy names; each requires the scope of the same name (see AuthExtensions).</summary>
public static class HubPolicies
{
    public const string Read = "hub:read";
    public const string Infer = "hub:infer";
    public const string Train = "hub:train";
    public const string Admin = "hub:admin";
    public const string ScopeClaim = "scope";
}

/// <summary>Builds the principal both schemes sign in: name, id, role and the effective scopes as claims.</summary>
public static class HubPrincipal
{
    public static ClaimsPrincipal Create(User user, IEnumerable<string> requestedScopes, string authenticationType)
    {
        var allowed = HubRoles.ScopesOf(user.Role);
        var claims = new List<Claim>
        {
            new(ClaimTypes.NameIdentifier, user.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            new(ClaimTypes.Name, user.Name),
            new(ClaimTypes.Role, user.Role),
        };
        claims.AddRange(requestedScopes.Where(allowed.Contains).Distinct().Select(s => new Claim(HubPolicies.ScopeClaim, s)));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, authenticationType, ClaimTypes.Name, ClaimTypes.Role));
    }

    public static int? UserId(this ClaimsPrincipal principal) =>
        int.TryParse(principal.FindFirstValue(ClaimTypes.NameIdentifier), out var id) ? id : null;

    public static bool HasScope(this ClaimsPrincipal principal, string scope) => principal.HasClaim(HubPolicies.ScopeClaim, scope);
}
