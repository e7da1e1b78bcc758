namespace Peft.Web.Security;

/// <summary>Response headers, rate limits and the default request-body limit (section <c>Security</c>).</summary>
public sealed class SecurityOptions
{
    public const string Section = "Security";

    /// <summary>
    /// Content-Security-Policy of every response; <c>{nonce}</c> becomes a per-request nonce (the API reference page's
    /// inline module script carries it). Blazor Server needs <c>connect-src 'self'</c> (its WebSocket) and MudBlazor
    /// inline styles; no inline or eval'd script is allowed.
    /// </summary>
    public string ContentSecurityPolicy { get; set; } =
        "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
        "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

    /// <summary>Request bodies of endpoints that do not set their own limit (uploads use Hub:Uploads) are refused with 413 past this.</summary>
    public long MaxRequestBodyBytes { get; set; } = 1L << 20;

    public RateLimitOptions RateLimits { get; set; } = new();
}

/// <summary>
/// Fixed-window limits on the REST and inference routes (<c>/api</c>, <c>/v1</c>, <c>/generate*</c>), one window per API
/// key, per signed-in user, or per client IP for requests without valid credentials. Past the limit: 429 with Retry-After.
/// </summary>
public sealed class RateLimitOptions
{
    /// <summary>Off: no limits (a private replica behind its own gateway).</summary>
    public bool Enabled { get; set; } = true;
    /// <summary>Requests per window for one API key or signed-in user.</summary>
    public int PermitLimit { get; set; } = 1200;
    /// <summary>Requests per window for one client IP without valid credentials.</summary>
    public int AnonymousPermitLimit { get; set; } = 300;
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(1);
}
