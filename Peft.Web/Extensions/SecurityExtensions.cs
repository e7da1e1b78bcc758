using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using Peft.Web.Security;

namespace Peft.Web.Extensions;

/// <summary>
/// Security headers on every response, per-caller rate limits on the REST and inference routes, and a default body
/// limit for endpoints that do not set their own (options: <see cref="SecurityOptions"/>).
/// </summary>
public static class SecurityExtensions
{
    /// <summary>HttpContext.Items key of this request's CSP nonce.</summary>
    public const string NonceItem = "peft.csp-nonce";

    public static IServiceCollection AddHubSecurity(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<SecurityOptions>().Bind(configuration.GetSection(SecurityOptions.Section));
        services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(Partition);
            o.OnRejected = RejectAsync;
        });
        return services;
    }

    /// <summary>Headers first (so every answer, errors included, carries them); the limiter after authentication (it partitions by caller).</summary>
    public static WebApplication UseSecurityHeaders(this WebApplication app)
    {
        app.Use(async (http, next) =>
        {
            var options = http.RequestServices.GetRequiredService<IOptions<SecurityOptions>>().Value;
            // Hex: no character that HTML attribute encoding rewrites (a base64 "+" came back as "&#x2B;" in Scalar's page).
            string nonce = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
            http.Items[NonceItem] = nonce;
            var headers = http.Response.Headers;
            headers.ContentSecurityPolicy = options.ContentSecurityPolicy.Replace("{nonce}", nonce, StringComparison.Ordinal);
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            headers["Referrer-Policy"] = "strict-origin-when-cross-origin";
            headers["Cross-Origin-Opener-Policy"] = "same-origin";
            headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()";
            await next(http);
        });
        return app;
    }

    /// <summary>
    /// Bodies are capped at <see cref="SecurityOptions.MaxRequestBodyBytes"/> (Kestrel answers 413 when reading past it); the
    /// upload endpoints raise the cap for their request before reading (Hub:Uploads). A declared length over the cap is
    /// refused up front, except multipart bodies, whose limit only the upload endpoint knows.
    /// </summary>
    public static WebApplication UseRequestLimits(this WebApplication app)
    {
        app.Use(async (http, next) =>
        {
            long max = http.RequestServices.GetRequiredService<IOptions<SecurityOptions>>().Value.MaxRequestBodyBytes;
            if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = max;
            if (http.Request.ContentLength > max && !http.Request.HasFormContentType)
            {
                await WriteProblemAsync(http, StatusCodes.Status413PayloadTooLarge, "Request body too large",
                    $"request body is {http.Request.ContentLength} bytes, over the {max}-byte limit (Security:MaxRequestBodyBytes)");
                return;
            }
            await next(http);
        });
        app.UseRateLimiter();
        return app;
    }

    private static RateLimitPartition<string> Partition(HttpContext http)
    {
        var limits = http.RequestServices.GetRequiredService<IOptions<SecurityOptions>>().Value.RateLimits;
        if (!limits.Enabled || !AuthExtensions.IsApi(http.Request)) return RateLimitPartition.GetNoLimiter("unlimited");
        var user = http.User;
        string key;
        int permits = limits.PermitLimit;
        if (user.Identity?.IsAuthenticated != true)
        {
            key = "ip:" + http.Connection.RemoteIpAddress;
            permits = limits.AnonymousPermitLimit;
        }
        else if (user.Identity.AuthenticationType == ApiKeyAuthenticationHandler.SchemeName)
            // One window per key (a user's keys are limited separately); the partition holds a hash, not the secret.
            key = "key:" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(http.Request.Headers.Authorization.ToString())));
        else
            key = "user:" + user.UserId();
        return RateLimitPartition.GetFixedWindowLimiter(key, _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = permits,
            Window = limits.Window,
            QueueLimit = 0,
            AutoReplenishment = true,
        });
    }

    private static async ValueTask RejectAsync(OnRejectedContext ctx, CancellationToken ct)
    {
        var window = ctx.HttpContext.RequestServices.GetRequiredService<IOptions<SecurityOptions>>().Value.RateLimits.Window;
        var retryAfter = ctx.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : window;
        int seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
        ctx.HttpContext.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await WriteProblemAsync(ctx.HttpContext, StatusCodes.Status429TooManyRequests, "Too many requests",
            $"rate limit reached for this caller; retry after {seconds} s (Security:RateLimits)");
    }

    private static async Task WriteProblemAsync(HttpContext http, int status, string title, string detail)
    {
        http.Response.StatusCode = status;
        var problems = http.RequestServices.GetRequiredService<IProblemDetailsService>();
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = http,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        });
    }
}
