using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Peft.Storage.Infrastructure;
using Peft.Web.Security;

namespace Peft.Tests.Hub;

/// <summary>Who may call the REST groups: cookie or API key, scopes capped by role, revoked keys refused.</summary>
public sealed class HubAuthTests
{
    [Fact]
    public async Task Anonymous_requests_get_401_problem_details_not_a_login_redirect()
    {
        using var hub = new HubFactory();
        using var client = hub.AnonymousClient();
        var response = await client.GetAsync("/api/adapters");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Inference_needs_credentials_unless_configured_anonymous()
    {
        using var hub = new HubFactory();
        using var client = hub.AnonymousClient();
        var response = await client.PostAsJsonAsync("/v1/completions", new { model = "peft-demo", prompt = "It is", max_tokens = 1 });
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/v1/adapters")).StatusCode);
    }

    [Fact]
    public async Task A_wrong_or_revoked_key_is_refused()
    {
        using var hub = new HubFactory();
        var key = await hub.CreateKeyAsync("admin", [HubScopes.Read]);
        using var good = hub.ClientWithKey(key);
        Assert.Equal(HttpStatusCode.OK, (await good.GetAsync("/api/adapters")).StatusCode);

        using var forged = hub.ClientWithKey(key[..^2] + (key[^1] == 'A' ? "BB" : "AA"));
        Assert.Equal(HttpStatusCode.Unauthorized, (await forged.GetAsync("/api/adapters")).StatusCode);

        await using (var scope = hub.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<CatalogDbContext>();
            var row = await db.ApiKeys.SingleAsync(k => key.Contains("_" + k.Prefix + "_"));
            Assert.NotNull(row.LastUsedAt);
            Assert.DoesNotContain(key, row.KeySha256);   // stored hashed
            await scope.ServiceProvider.GetRequiredService<ApiKeyService>().RevokeAsync(row.UserId, row.Id, false, CancellationToken.None);
        }
        Assert.Equal(HttpStatusCode.Unauthorized, (await good.GetAsync("/api/adapters")).StatusCode);
    }

    [Fact]
    public async Task A_viewer_reads_but_cannot_write_and_a_read_key_of_an_admin_cannot_write_either()
    {
        using var hub = new HubFactory();
        await hub.CreateUserAsync("vera", HubRoles.Viewer);
        var viewerKey = await hub.CreateKeyAsync("vera", [HubScopes.Read, HubScopes.Infer]);
        using var viewer = hub.ClientWithKey(viewerKey);
        Assert.Equal(HttpStatusCode.OK, (await viewer.GetAsync("/api/base-models")).StatusCode);
        var write = await viewer.PostAsJsonAsync("/api/base-models", new { name = "llama_base", folder = "llama_base" });
        Assert.Equal(HttpStatusCode.Forbidden, write.StatusCode);

        using var readOnly = hub.ClientWithKey(await hub.CreateKeyAsync("admin", [HubScopes.Read]));
        Assert.Equal(HttpStatusCode.Forbidden, (await readOnly.PostAsJsonAsync("/api/base-models", new { name = "llama_base", folder = "llama_base" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await readOnly.PutAsJsonAsync("/api/adapters/x/aliases/production", new { version = 1 })).StatusCode);

        using var trainer = hub.ClientWithKey(await hub.CreateKeyAsync("admin", [HubScopes.Train]));
        await hub.RegisterGoldenBaseAsync(trainer, "llama_base");
        Assert.Equal(0, (await hub.CountsAsync()).Adapters);
    }

    [Fact]
    public async Task Keys_cannot_exceed_the_owners_role_and_a_demoted_owners_key_loses_the_scope()
    {
        using var hub = new HubFactory();
        await hub.CreateUserAsync("tom", HubRoles.Trainer);
        var ex = await Assert.ThrowsAsync<Peft.Core.PeftUserException>(() => hub.CreateKeyAsync("tom", [HubScopes.Admin]));
        Assert.Contains("cannot grant scope(s) admin", ex.Message);

        var key = await hub.CreateKeyAsync("tom", [HubScopes.Read, HubScopes.Train]);
        await using (var scope = hub.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<CatalogDbContext>();
            var tom = await db.Users.SingleAsync(u => u.Name == "tom");
            await scope.ServiceProvider.GetRequiredService<AccountService>().SetRoleAsync(tom.Id, HubRoles.Viewer, CancellationToken.None);
        }
        using var client = hub.ClientWithKey(key);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/adapters")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await client.PostAsJsonAsync("/api/base-models", new { name = "llama_base", folder = "llama_base" })).StatusCode);
    }

    [Fact]
    public async Task First_run_creates_admin_with_the_configured_password_hashed_and_only_once()
    {
        using var hub = new HubFactory();
        _ = hub.Services;
        await using var scope = hub.Services.CreateAsyncScope();
        var accounts = scope.ServiceProvider.GetRequiredService<AccountService>();
        var admin = Assert.Single(await accounts.ListAsync(CancellationToken.None));
        Assert.Equal(("admin", HubRoles.Admin), (admin.Name, admin.Role));
        Assert.DoesNotContain(HubFactory.AdminPassword, admin.PasswordHash);
        Assert.NotNull(await accounts.CheckPasswordAsync("admin", HubFactory.AdminPassword, CancellationToken.None));
        Assert.Null(await accounts.CheckPasswordAsync("admin", "wrong-password", CancellationToken.None));
        Assert.Equal((false, null), await accounts.EnsureAdminAsync("another-password", CancellationToken.None));
        Assert.Equal(HubRoles.Admin, (await accounts.ListAsync(CancellationToken.None)).Single().Role);
    }

    [Fact]
    public async Task Without_a_configured_password_one_is_generated_and_works()
    {
        using var hub = new HubFactory();
        await using var scope = hub.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<CatalogDbContext>();
        db.Users.RemoveRange(db.Users);
        await db.SaveChangesAsync();
        var accounts = scope.ServiceProvider.GetRequiredService<AccountService>();
        var (created, generated) = await accounts.EnsureAdminAsync(null, CancellationToken.None);
        Assert.True(created);
        Assert.NotNull(generated);
        Assert.True(generated!.Length >= AccountService.MinPasswordLength);
        Assert.NotNull(await accounts.CheckPasswordAsync("admin", generated, CancellationToken.None));
    }
}
