using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Peft.Web.Security;

namespace Peft.Web.Extensions;

/// <summary>
/// Authentication (browser cookie or API-key bearer, chosen per request) and the one set of policies the pages and
/// every REST route group use. A policy is a scope: signed-in users get the scopes of their role, API keys their own
/// scopes capped by their owner's role.
/// </summary>
public static class AuthExtensions
{
    private const string HubScheme = "Hub";

    public static IServiceCollection AddHubAuth(this IServiceCollection services)
    {
        services.AddScoped<AccountService>();
        services.AddScoped<ApiKeyService>();
        services.AddHostedService<AdminBootstrapper>();

        services.AddAuthentication(HubScheme)
            .AddPolicyScheme(HubScheme, "cookie or API key", o => o.ForwardDefaultSelector = ctx =>
                ctx.Request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
                    ? ApiKeyAuthenticationHandler.SchemeName : CookieAuthenticationDefaults.AuthenticationScheme)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null)
            .AddCookie(o =>
            {
                o.LoginPath = "/login";
                o.AccessDeniedPath = "/denied";
                o.Cookie.Name = "peft.auth";
                o.Cookie.HttpOnly = true;
                o.Cookie.SameSite = SameSiteMode.Lax;
                o.SlidingExpiration = true;
                o.ExpireTimeSpan = TimeSpan.FromHours(12);
                // Machines get a status code (problem details via the status-code pages), browsers a redirect.
                o.Events.OnRedirectToLogin = ctx => Challenge(ctx, StatusCodes.Status401Unauthorized);
                o.Events.OnRedirectToAccessDenied = ctx => Challenge(ctx, StatusCodes.Status403Forbidden);
            });

        services.AddAuthorizationBuilder()
            .AddPolicy(HubPolicies.Read, p => p.RequireAuthenticatedUser().RequireClaim(HubPolicies.ScopeClaim, HubScopes.Read))
            .AddPolicy(HubPolicies.Infer, p => p.RequireAuthenticatedUser().RequireClaim(HubPolicies.ScopeClaim, HubScopes.Infer))
            .AddPolicy(HubPolicies.Train, p => p.RequireAuthenticatedUser().RequireClaim(HubPolicies.ScopeClaim, HubScopes.Train))
            .AddPolicy(HubPolicies.Admin, p => p.RequireAuthenticatedUser().RequireClaim(HubPolicies.ScopeClaim, HubScopes.Admin));
        services.AddCascadingAuthenticationState();
        return services;
    }

    private static Task Challenge(RedirectContext<CookieAuthenticationOptions> ctx, int status)
    {
        if (IsApi(ctx.Request)) ctx.Response.StatusCode = status;
        else ctx.Response.Redirect(ctx.RedirectUri);
        return Task.CompletedTask;
    }

    /// <summary>Machine routes: they get status codes rather than login redirects, and rate limits.</summary>
    internal static bool IsApi(HttpRequest r) =>
        r.Path.StartsWithSegments("/api") || r.Path.StartsWithSegments("/v1") || r.Path.StartsWithSegments("/hubs")
        || r.Path.StartsWithSegments("/metrics") || r.Path.StartsWithSegments("/openapi")
        || r.Path.StartsWithSegments("/generate") || r.Path.StartsWithSegments("/generate_stream");

    /// <summary>
    /// The catalog convention for a REST group: reading needs <c>read</c>, anything else <c>train</c>. Other groups
    /// call <c>RequireAuthorization(HubPolicies.X)</c> with the scope they need (inference: Infer).
    /// </summary>
    public static TBuilder RequireReadOrTrain<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder
    {
        builder.Add(endpoint =>
        {
            var methods = endpoint.Metadata.OfType<HttpMethodMetadata>().SelectMany(m => m.HttpMethods).ToList();
            var reads = methods.Count > 0 && methods.All(m => HttpMethods.IsGet(m) || HttpMethods.IsHead(m));
            endpoint.Metadata.Add(new AuthorizeAttribute(reads ? HubPolicies.Read : HubPolicies.Train));
        });
        return builder;
    }

    /// <summary>Sign-out for the browser (a form post with the antiforgery token the layout renders).</summary>
    public static IEndpointRouteBuilder MapAccountEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/logout", async (HttpContext http, [FromForm] string? returnUrl) =>
            {
                await http.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
                return TypedResults.LocalRedirect("/login");
            })
            .RequireAuthorization()
            .ExcludeFromDescription();
        return app;
    }
}
