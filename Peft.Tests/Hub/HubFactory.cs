using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Peft.Storage;
using Peft.Storage.Infrastructure;
using Peft.Tests.Data;
using Peft.Tests.Support;
using Peft.Web.Security;

namespace Peft.Tests.Hub;

/// <summary>
/// The real web host over TestServer, on a fresh SQLite file (or, for <see cref="DatabaseProvider.Postgres"/>, a fresh
/// PostgreSQL database, see <see cref="PostgresTestDatabase"/>) and blob folder per instance. Base models are looked up
/// under the golden data folder (so golden adapters can be registered against their bases). <see cref="CreateClient"/>
/// clients carry an admin API key (the REST groups require authentication); <see cref="AnonymousClient"/> has none.
/// </summary>
public sealed class HubFactory : WebApplicationFactory<Program>
{
    public const string AdminPassword = "admin-password-for-tests";
    private readonly TempDir? _owned;
    private readonly PostgresTestDatabase? _postgres;
    private string? _adminKey;

    /// <summary>A hub on <paramref name="dataDir"/> (kept on dispose), or on a fresh folder removed on dispose.</summary>
    public HubFactory(string? dataDir = null, DatabaseProvider provider = DatabaseProvider.Sqlite)
    {
        _owned = dataDir is null ? new TempDir() : null;
        DataDir = dataDir ?? _owned!.Path;
        Provider = provider;
        if (provider == DatabaseProvider.Postgres) _postgres = PostgresTestDatabase.Create();
    }

    public DatabaseProvider Provider { get; }

    public string DataDir { get; }
    public bool Seed { get; init; }
    public Dictionary<string, string?> Settings { get; } = new();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        builder.ConfigureAppConfiguration((_, config) =>
        {
            var settings = new Dictionary<string, string?>
            {
                ["Hub:DataDir"] = DataDir,
                ["Hub:ModelsDir"] = GoldenData.Root,
                ["Hub:CorporaDir"] = RepoFiles.Path("data"),
                ["Hub:SeedDefaults"] = Seed.ToString(),
                ["Hub:AdminPassword"] = AdminPassword,
                ["Hub:DatabaseProvider"] = Provider.ToString(),
                // No Hangfire server unless a test runs jobs (JobsTestHub turns it on): idle servers poll and cost CPU.
                ["Jobs:RunServer"] = "false",
            };
            if (_postgres is not null) settings["ConnectionStrings:Catalog"] = _postgres.ConnectionString;
            foreach (var (k, v) in Settings) settings[k] = v;
            config.AddInMemoryCollection(settings);
        });
    }

    protected override void ConfigureClient(HttpClient client)
    {
        base.ConfigureClient(client);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
    }

    /// <summary>An admin API key with every scope; stored in this hub's database, so valid for any host on it.</summary>
    public string AdminKey => _adminKey ??= CreateKeyAsync("admin", HubScopes.All).GetAwaiter().GetResult();

    /// <summary>A client with no credentials.</summary>
    public HttpClient AnonymousClient()
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = null;
        return client;
    }

    /// <summary>A client whose requests carry <paramref name="key"/>.</summary>
    public HttpClient ClientWithKey(string key)
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    /// <summary>Creates user <paramref name="name"/> (unless it exists) with <paramref name="role"/>.</summary>
    public async Task CreateUserAsync(string name, string role, string password = "user-password-1")
    {
        await using var scope = Services.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<AccountService>().CreateAsync(name, role, password, CancellationToken.None);
    }

    /// <summary>A new API key of user <paramref name="userName"/> with <paramref name="scopes"/>.</summary>
    public async Task<string> CreateKeyAsync(string userName, IReadOnlyCollection<string> scopes)
    {
        await using var scope = Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<CatalogDbContext>();
        var user = await db.Users.SingleAsync(u => u.Name == userName);
        var created = await scope.ServiceProvider.GetRequiredService<ApiKeyService>().CreateAsync(user.Id, $"test-{Guid.NewGuid():N}", scopes, CancellationToken.None);
        return created.Secret;
    }

    /// <summary>Rows in every catalog table and files in the blob store: what a refused upload must leave unchanged.</summary>
    public async Task<(int Adapters, int Versions, int Files, int Blobs)> CountsAsync()
    {
        await using var scope = Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<CatalogDbContext>();
        var blobDir = Path.Combine(DataDir, "blobs", "sha256");
        int blobs = Directory.Exists(blobDir) ? Directory.EnumerateFiles(blobDir, "*", SearchOption.AllDirectories).Count() : 0;
        return (await db.Adapters.CountAsync(), await db.AdapterVersions.CountAsync(), await db.AdapterFiles.CountAsync(), blobs);
    }

    /// <summary>Registers golden base <paramref name="name"/> (a folder under Golden/) through the API.</summary>
    public async Task RegisterGoldenBaseAsync(HttpClient client, string name)
    {
        var response = await client.PostAsJsonAsync("/api/base-models", new { name, folder = name });
        Assert.True(response.IsSuccessStatusCode, $"registering {name}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    public static MultipartFormDataContent AdapterForm(string adapterDir, string? baseModel = null)
    {
        var form = new MultipartFormDataContent
        {
            { File(Path.Combine(adapterDir, "adapter_config.json")), "adapter_config", "adapter_config.json" },
            { File(Path.Combine(adapterDir, "adapter_model.safetensors")), "adapter_model", "adapter_model.safetensors" },
        };
        if (baseModel is not null) form.Add(new StringContent(baseModel), "base_model");
        return form;
    }

    public static ByteArrayContent File(string path) => Bytes(System.IO.File.ReadAllBytes(path));

    public static ByteArrayContent Bytes(byte[] bytes)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return content;
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
        {
            SqliteConnection.ClearAllPools();
            _postgres?.Dispose();
            _owned?.Dispose();
        }
    }
}
