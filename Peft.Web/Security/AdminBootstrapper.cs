namespace Peft.Web.Security;

/// <summary>
/// First run: creates the <c>admin</c> account from <c>Hub:AdminPassword</c>, or with a generated password written
/// once to the log (and nowhere else). Registered after the catalog initializer, so the tables exist.
/// </summary>
internal sealed class AdminBootstrapper(IServiceScopeFactory scopes, IConfiguration configuration, ILogger<AdminBootstrapper> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var accounts = scope.ServiceProvider.GetRequiredService<AccountService>();
        var (created, generated) = await accounts.EnsureAdminAsync(NullIfEmpty(configuration["Hub:AdminPassword"]), cancellationToken);
        if (generated is not null)
            logger.LogWarning("Created user 'admin' with generated password {Password} (shown once; set Hub:AdminPassword to choose it)", generated);
        else if (created)
            logger.LogInformation("Created user 'admin' with the password from Hub:AdminPassword");
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // An empty value (e.g. `Hub__AdminPassword=` in a compose file) means "not set": generate one.
    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
