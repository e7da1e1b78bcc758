namespace Peft.Web.Infrastructure;

/// <summary>
/// Runs one operation of a typed service in its own DI scope. A Blazor circuit lives for hours and its events can
/// overlap, so pages must not hold one DbContext-backed service for the circuit's life.
/// </summary>
public sealed class ServiceRunner(IServiceScopeFactory scopes)
{
    public async Task<T> RunAsync<TService, T>(Func<TService, Task<T>> work) where TService : notnull
    {
        await using var scope = scopes.CreateAsyncScope();
        return await work(scope.ServiceProvider.GetRequiredService<TService>());
    }

    public async Task RunAsync<TService>(Func<TService, Task> work) where TService : notnull
    {
        await using var scope = scopes.CreateAsyncScope();
        await work(scope.ServiceProvider.GetRequiredService<TService>());
    }
}
