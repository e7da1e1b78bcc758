using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Peft.Web.Security;

/// <summary><c>Authorization: Bearer peft_...</c>: the key's scopes, capped by its owner's current role.</summary>
public sealed class ApiKeyAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger,
    UrlEncoder encoder, ApiKeyService keys, IConfiguration configuration) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? header = Request.Headers.Authorization;
        if (header is null || !header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return AuthenticateResult.NoResult();
        string presented = header["Bearer ".Length..].Trim();
        if (await keys.AuthenticateBootstrapAsync(presented, configuration["Hub:BootstrapApiKey"], Context.RequestAborted) is { } admin)
            return AuthenticateResult.Success(new AuthenticationTicket(HubPrincipal.Create(admin, HubScopes.All, SchemeName), SchemeName));
        var found = await keys.AuthenticateAsync(presented, Context.RequestAborted);
        if (found is not { } f) return AuthenticateResult.Fail("invalid, revoked or expired API key");
        var principal = HubPrincipal.Create(f.User, f.Key.Scopes.Split(' ', StringSplitOptions.RemoveEmptyEntries), SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }
}
