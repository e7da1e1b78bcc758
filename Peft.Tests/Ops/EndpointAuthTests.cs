using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.DependencyInjection;
using Peft.Tests.Hub;
using Peft.Web.Security;

namespace Peft.Tests.Ops;

/// <summary>
/// Every endpoint the app maps (all endpoint data sources, so one added later is covered) refuses a caller without
/// credentials, and a read-only key cannot change anything.
/// </summary>
public sealed class EndpointAuthTests
{
    /// <summary>The only endpoints open to anonymous callers, each with the reason.</summary>
    private static readonly Dictionary<string, string> Anonymous = new()
    {
        ["/health/live"] = "probe for orchestrators",
        ["/health/ready"] = "probe for orchestrators",
        ["/login"] = "the sign-in page",
        ["/denied"] = "shown after a refused page; says nothing about the hub",
    };

    private static readonly string[] StaticExtensions = [".js", ".css", ".svg", ".png", ".ico", ".woff2", ".map"];

    /// <summary>
    /// Framework plumbing: Blazor's circuit and scripts, the static-file fallback, and static files (scripts, styles and
    /// icons of the pages and of the API reference page; they hold no hub data).
    /// </summary>
    private static bool IsFramework(RouteEndpoint e)
    {
        string route = e.RoutePattern.RawText?.TrimStart('/') ?? "";
        return route.StartsWith("_blazor", StringComparison.Ordinal) || route.StartsWith("_framework", StringComparison.Ordinal)
            || route.StartsWith("_content/", StringComparison.Ordinal)
            || e.RoutePattern.Parameters.Any(p => p.IsCatchAll && p.ParameterPolicies.Any(x => x.Content == "file"))
            || (e.RoutePattern.Parameters.Count == 0 && StaticExtensions.Any(x => route.EndsWith(x, StringComparison.Ordinal)));
    }

    internal static List<(RouteEndpoint Endpoint, string Method, string Path)> Enumerate(IServiceProvider services)
    {
        var result = new List<(RouteEndpoint, string, string)>();
        foreach (var e in services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>())
        {
            if (IsFramework(e)) continue;
            string path = SamplePath(e.RoutePattern);
            var methods = e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? [];
            foreach (var m in methods.Count > 0 ? methods : ["GET"]) result.Add((e, m, path));
        }
        return result;
    }

    /// <summary>A concrete path for a route: parameters get a value their constraints accept.</summary>
    private static string SamplePath(RoutePattern pattern)
    {
        var sb = new StringBuilder();
        foreach (var segment in pattern.PathSegments)
        {
            sb.Append('/');
            foreach (var part in segment.Parts)
                sb.Append(part switch
                {
                    RoutePatternLiteralPart l => l.Content,
                    RoutePatternSeparatorPart s => s.Content,
                    RoutePatternParameterPart p when p.ParameterPolicies.Any(x => x.Content is "int" or "long") => "1",
                    RoutePatternParameterPart p when p.IsCatchAll => "x/y",
                    RoutePatternParameterPart => "x",
                    _ => "",
                });
        }
        return sb.Length == 0 ? "/" : sb.ToString();
    }

    /// <summary>A request with a body of a type the endpoint accepts (routing answers 415 before authorization otherwise).</summary>
    private static HttpRequestMessage Request(RouteEndpoint endpoint, string method, string path)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method is "POST" or "PUT" or "PATCH")
        {
            bool form = endpoint.Metadata.GetMetadata<Microsoft.AspNetCore.Http.Metadata.IAcceptsMetadata>()?.ContentTypes.Any(t => t.Contains("form")) == true;
            request.Content = form ? new FormUrlEncodedContent([]) : new StringContent("{}", Encoding.UTF8, "application/json");
        }
        return request;
    }

    [Fact]
    public async Task Every_endpoint_but_health_and_sign_in_refuses_anonymous_callers()
    {
        using var hub = new HubFactory();
        using var client = hub.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        client.DefaultRequestHeaders.Authorization = null;
        var endpoints = Enumerate(hub.Services);
        Assert.Contains(endpoints, e => e.Path == "/api/adapters");       // the enumeration sees the REST groups,
        Assert.Contains(endpoints, e => e.Path == "/v1/completions");     // serving,
        Assert.Contains(endpoints, e => e.Path == "/metrics");            // and the scrape endpoint

        var failures = new List<string>();
        foreach (var (endpoint, method, path) in endpoints)
        {
            using var response = await client.SendAsync(Request(endpoint, method, path));
            if (Anonymous.ContainsKey(path))
            {
                // Open pages render; their form posts are guarded by antiforgery instead (see SecurityTests). Readiness
                // may honestly answer 503 here (this host runs no training server): open means not refused.
                bool open = response.StatusCode == HttpStatusCode.OK || (path == "/health/ready" && response.StatusCode == HttpStatusCode.ServiceUnavailable);
                if (method == "GET" && !open)
                    failures.Add($"{method} {path} is meant to be open but answered {(int)response.StatusCode}");
                continue;
            }
            bool refused = response.StatusCode == HttpStatusCode.Unauthorized
                || (response.StatusCode == HttpStatusCode.Redirect && response.Headers.Location?.OriginalString.Contains("/login") == true);
            if (!refused) failures.Add($"{method} {path} ({endpoint.DisplayName}) answered {(int)response.StatusCode} without credentials");
        }
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Fact]
    public async Task A_read_key_cannot_change_anything()
    {
        using var hub = new HubFactory();
        using var reader = hub.ClientWithKey(await hub.CreateKeyAsync("admin", [HubScopes.Read]));
        var writes = Enumerate(hub.Services)
            .Where(e => !HttpMethods.IsGet(e.Method) && !HttpMethods.IsHead(e.Method))
            .Where(e => e.Path != "/logout")   // the browser's sign-out form (any signed-in caller may end its own session)
            .Where(e => !e.Endpoint.Metadata.Any(m => m.GetType().Name == "HubMetadata"))   // SignalR negotiate: read access
            // Page form posts: the page's own policy (read pages) plus antiforgery; changes go through the circuit,
            // whose actions check scopes (covered by the page tests).
            .Where(e => e.Endpoint.Metadata.GetMetadata<Microsoft.AspNetCore.Components.Endpoints.ComponentTypeMetadata>() is null)
            .ToList();
        Assert.Contains(writes, e => e.Method == "DELETE" && e.Path.StartsWith("/api/adapters/", StringComparison.Ordinal));
        Assert.Contains(writes, e => e.Method == "POST" && e.Path == "/api/base-models");
        var failures = new List<string>();
        foreach (var (endpoint, method, path) in writes)
        {
            using var response = await reader.SendAsync(Request(endpoint, method, path));
            if (response.StatusCode != HttpStatusCode.Forbidden) failures.Add($"{method} {path} answered {(int)response.StatusCode} to a read key");
        }
        Assert.True(failures.Count == 0, string.Join('\n', failures));
        Assert.Equal(0, (await hub.CountsAsync()).Adapters);
    }
}
