using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Template;
using Microsoft.Extensions.DependencyInjection;
using Peft.Tests.Data;
using Peft.Tests.Hub;

namespace Peft.Tests.Ops;

/// <summary>The Scalar reference page, the examples in the OpenAPI document and the repository's .http file.</summary>
public sealed class ApiReferenceTests
{
    [Fact]
    public async Task The_reference_page_serves_signed_in_callers_with_the_request_nonce_and_sends_others_to_sign_in()
    {
        using var hub = new HubFactory();
        using var client = hub.CreateClient();
        var page = await client.GetAsync("/scalar/v1");   // (HttpClient drops the key on /scalar's redirect to it)
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        string html = await page.Content.ReadAsStringAsync();
        Assert.Contains("\"url\":\"openapi/v1.json\"", html);   // the document it renders
        // Its inline module script runs under the CSP only through this response's nonce.
        string nonce = Regex.Match(page.Headers.GetValues("Content-Security-Policy").Single(), "'nonce-([^']+)'").Groups[1].Value;
        Assert.NotEmpty(nonce);
        foreach (Match script in Regex.Matches(html, "<script(?![^>]*\\bsrc=)[^>]*>"))
            Assert.Contains($"nonce=\"{nonce}\"", script.Value);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/scalar/scalar.js")).StatusCode);

        using var anonymous = hub.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        anonymous.DefaultRequestHeaders.Authorization = null;
        var refused = await anonymous.GetAsync("/scalar");
        Assert.Equal(HttpStatusCode.Redirect, refused.StatusCode);
        Assert.Contains("/login", refused.Headers.Location!.OriginalString);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/openapi/v1.json")).StatusCode);
    }

    [Fact]
    public async Task The_main_calls_have_examples_in_the_openapi_document()
    {
        using var hub = new HubFactory();
        using var client = hub.CreateClient();
        var doc = JsonNode.Parse(await client.GetStringAsync("/openapi/v1.json"))!;
        JsonNode Op(string path, string method) => doc["paths"]![path]?[method] ?? throw new Xunit.Sdk.XunitException($"{method} {path} missing");

        var completion = Op("/v1/completions", "post")["requestBody"]!["content"]!["application/json"]!["example"]!;
        Assert.Equal("austen-lora", (string?)completion["model"]);
        Assert.NotNull(completion["prompt"]);
        var chat = Op("/v1/chat/completions", "post")["requestBody"]!["content"]!["application/json"]!["example"]!;
        Assert.Equal("user", (string?)chat["messages"]![0]!["role"]);

        var upload = Op("/api/adapters/{name}/versions", "post")["requestBody"]!["content"]!["multipart/form-data"]!["schema"]!["properties"]!;
        foreach (var field in new[] { "adapter_config", "adapter_model", "file", "base_model" }) Assert.NotNull(upload[field]);
        Assert.Equal("binary", (string?)upload["adapter_model"]!["format"]);

        var download = Op("/api/adapters/{name}/versions/{version}/download", "get")["parameters"]!.AsArray();
        Assert.Equal("production", (string?)download.Single(p => (string?)p!["name"] == "version")!["example"]);
    }

    [Fact]
    public async Task Every_call_in_the_http_file_targets_a_mapped_route_with_a_valid_json_body()
    {
        using var hub = new HubFactory();
        using var _ = hub.CreateClient();   // starts the host, so every endpoint is mapped
        var routes = hub.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Select(e => (Template: TemplateParser.Parse(e.RoutePattern.RawText!.TrimStart('/')), Methods: e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()?.HttpMethods ?? ["GET"]))
            .ToList();

        string text = await File.ReadAllTextAsync(RepoFiles.Path("docs", "peft.http"));
        var requests = text.Split("###").Skip(1).ToList();
        Assert.True(requests.Count >= 15, $"{requests.Count} requests");
        foreach (var block in requests)
        {
            var lines = block.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
            var call = Regex.Match(string.Join('\n', lines), @"^(GET|POST|PUT|DELETE|PATCH) \{\{host\}\}(\S+)$", RegexOptions.Multiline);
            Assert.True(call.Success, $"no request line in: {block}");
            string method = call.Groups[1].Value, path = call.Groups[2].Value.Split('?')[0];
            bool mapped = routes.Any(r => r.Methods.Contains(method) && new TemplateMatcher(r.Template, new()).TryMatch(path, new()));
            Assert.True(mapped, $"{method} {path} in docs/peft.http matches no endpoint");

            int blank = lines.FindIndex(l => l.Length == 0 && lines.IndexOf(l) > lines.FindIndex(x => x.Contains("{{host}}")));
            if (block.Contains("Content-Type: application/json") && !block.Contains("multipart"))
            {
                string body = string.Join('\n', lines.Skip(blank + 1)).Trim();
                Assert.NotNull(JsonNode.Parse(body));
            }
        }
    }

    [Fact]
    public void The_job_example_uses_only_job_keys_and_fine_tuning_keys()
    {
        string doc = File.ReadAllText(RepoFiles.Path("docs", "FINE-TUNING.md"));
        var documented = Regex.Matches(doc, @"^\| `([a-z_0-9]+)` \|", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToHashSet();
        Assert.Contains("lora_alpha", documented);
        string[] jobKeys = ["base_model", "dataset", "adapter_name", "queue", "priority", "submitted_by"];
        string http = File.ReadAllText(RepoFiles.Path("docs", "peft.http"));
        var body = JsonNode.Parse(Regex.Match(http, @"POST \{\{host\}\}/api/jobs\n(?:.+\n)*\n(\{.*\})").Groups[1].Value)!.AsObject();
        foreach (var (key, _) in body) Assert.True(jobKeys.Contains(key) || documented.Contains(key), $"'{key}' is neither a job key nor in docs/FINE-TUNING.md");
        foreach (var key in new[] { "base_model", "dataset", "adapter_name" }) Assert.True(body.ContainsKey(key), key);
    }
}
