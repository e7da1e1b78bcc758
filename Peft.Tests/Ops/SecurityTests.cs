using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Logging;
using Peft.Tests.Hub;
using Peft.Web.Security;

namespace Peft.Tests.Ops;

/// <summary>Security headers, antiforgery, rate limits, body limits and what reaches the logs.</summary>
public sealed class SecurityTests
{
    [Fact]
    public async Task Pages_and_api_answers_carry_the_security_headers_and_the_sign_in_page_still_renders()
    {
        using var hub = new HubFactory();
        using var anonymous = hub.AnonymousClient();
        var login = await anonymous.GetAsync("/login");
        Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        string html = await login.Content.ReadAsStringAsync();
        Assert.Contains("<form", html);
        Assert.Contains("_framework/blazor.web.js", html);     // the script the CSP must allow ('self')
        var api = await anonymous.GetAsync("/api/adapters");    // an error answer carries them too
        Assert.Equal(HttpStatusCode.Unauthorized, api.StatusCode);
        foreach (var response in new[] { login, api })
        {
            string csp = response.Headers.GetValues("Content-Security-Policy").Single();
            Assert.Contains("frame-ancestors 'none'", csp);
            Assert.Contains("script-src 'self' 'nonce-", csp);
            Assert.Contains("connect-src 'self'", csp);           // Blazor's WebSocket
            Assert.DoesNotContain("unsafe-eval", csp);
            Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
            Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
            Assert.Equal("strict-origin-when-cross-origin", response.Headers.GetValues("Referrer-Policy").Single());
        }
        // Every page's inline script would need the nonce: the pages have none (scripts are files under 'self').
        Assert.DoesNotMatch(new Regex("<script(?![^>]*\\bsrc=)[^>]*>", RegexOptions.IgnoreCase), html);
    }

    [Fact]
    public async Task The_sign_in_form_carries_an_antiforgery_token_and_a_post_without_it_is_refused()
    {
        using var hub = new HubFactory();
        using var anonymous = hub.AnonymousClient();
        string html = await anonymous.GetStringAsync("/login");
        Assert.Contains("__RequestVerificationToken", html);
        var post = await anonymous.PostAsync("/login", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["_handler"] = "login", ["Input.Name"] = "admin", ["Input.Password"] = HubFactory.AdminPassword,
        }));
        Assert.Equal(HttpStatusCode.BadRequest, post.StatusCode);
        Assert.False(post.Headers.Contains("Set-Cookie"));
    }

    [Fact]
    public async Task A_key_over_its_rate_limit_gets_429_with_retry_after_while_other_keys_go_on()
    {
        using var hub = new HubFactory
        {
            Settings = { ["Security:RateLimits:PermitLimit"] = "3", ["Security:RateLimits:AnonymousPermitLimit"] = "2", ["Security:RateLimits:Window"] = "00:10:00" },
        };
        using var first = hub.ClientWithKey(await hub.CreateKeyAsync("admin", [HubScopes.Read]));
        for (int i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.OK, (await first.GetAsync("/api/adapters")).StatusCode);
        var refused = await first.GetAsync("/api/adapters");
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        var retry = refused.Headers.RetryAfter?.Delta;
        Assert.NotNull(retry);
        Assert.InRange(retry!.Value.TotalSeconds, 1, 600);
        Assert.Contains("rate limit", await refused.Content.ReadAsStringAsync());

        using var second = hub.ClientWithKey(await hub.CreateKeyAsync("admin", [HubScopes.Read]));
        Assert.Equal(HttpStatusCode.OK, (await second.GetAsync("/api/adapters")).StatusCode);   // its own window
        using var anonymous = hub.AnonymousClient();
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health/live")).StatusCode);   // probes are never limited
        for (int i = 0; i < 2; i++) Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/adapters")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await anonymous.GetAsync("/api/adapters")).StatusCode);
    }

    [Fact]
    public async Task A_json_body_over_the_default_limit_gets_413_before_anything_runs()
    {
        using var hub = new HubFactory { Settings = { ["Security:MaxRequestBodyBytes"] = "4096" } };
        using var admin = hub.CreateClient();
        var big = await admin.PostAsJsonAsync("/api/base-models", new { name = "llama_base", folder = "llama_base", pad = new string('x', 5000) });
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, big.StatusCode);
        Assert.Equal("application/problem+json", big.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Security:MaxRequestBodyBytes", await big.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync("/api/base-models/llama_base")).StatusCode);   // nothing registered
        await hub.RegisterGoldenBaseAsync(admin, "llama_base");   // a body under the limit goes through
    }

    [Fact]
    public async Task Secrets_do_not_reach_the_logs_except_the_one_first_run_password_line()
    {
        const string bootstrap = "peft_bootstrap-secret-for-the-log-test";
        var sink = new LogSink();
        using var hub = new HubFactory
        {
            Settings = { ["Hub:AdminPassword"] = null, ["Hub:BootstrapApiKey"] = bootstrap, ["Logging:LogLevel:Default"] = "Trace" },
        };
        using var factory = hub.WithWebHostBuilder(b => b.ConfigureLogging(l => l.AddProvider(sink)));
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bootstrap);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/adapters")).StatusCode);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "peft_wrong_key_for_the_log_test");
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/adapters")).StatusCode);

        var lines = sink.Lines.ToList();
        var passwordLines = lines.Where(l => l.Contains("generated password", StringComparison.Ordinal)).ToList();
        string passwordLine = Assert.Single(passwordLines);
        string password = Regex.Match(passwordLine, "generated password (\\S+)").Groups[1].Value;
        Assert.True(password.Length >= 12, passwordLine);
        Assert.Single(lines, l => l.Contains(password, StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains(bootstrap, StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("peft_wrong_key_for_the_log_test", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("/api/adapters", StringComparison.Ordinal));   // trace logging did see the requests
    }

    /// <summary>Every log message (with its exception and scopes' text) of the host.</summary>
    private sealed class LogSink : ILoggerProvider
    {
        public ConcurrentQueue<string> Lines { get; } = new();
        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);
        public void Dispose() { }

        private sealed class Logger(LogSink sink, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull
            {
                sink.Lines.Enqueue($"{category} scope: {state}");
                return null;
            }

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var text = new StringBuilder($"{category} {logLevel}: {formatter(state, exception)}");
                if (state is IEnumerable<KeyValuePair<string, object?>> values)
                    foreach (var (k, v) in values) text.Append($" {k}={v}");
                if (exception is not null) text.Append(' ').Append(exception);
                sink.Lines.Enqueue(text.ToString());
            }
        }
    }
}
