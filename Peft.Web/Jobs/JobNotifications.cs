using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;

namespace Peft.Web.Jobs;

/// <summary>What a subscriber receives per persisted job event.</summary>
public sealed record JobEventMessage(long JobId, long Seq, string Type, string Json);

/// <summary>
/// In-process fan-out of job events (fed by <see cref="JobEventRelay"/>, which tails the events table so events of
/// workers on other machines arrive too): pages subscribe to one job; the SignalR hub's group for the job gets the
/// same messages.
/// </summary>
public sealed class JobNotifications(IHubContext<JobsHub> hub, ILogger<JobNotifications> logger)
{
    private readonly ConcurrentDictionary<long, ConcurrentDictionary<Guid, Func<JobEventMessage, Task>>> _subscribers = new();
    private readonly ConcurrentDictionary<Guid, Func<JobEventMessage, Task>> _everyJob = new();

    /// <summary>Calls <paramref name="handler"/> for every new event of <paramref name="jobId"/> until the handle is disposed.</summary>
    public IDisposable Subscribe(long jobId, Func<JobEventMessage, Task> handler)
    {
        var id = Guid.NewGuid();
        _subscribers.GetOrAdd(jobId, _ => new())[id] = handler;
        return new Subscription(() =>
        {
            if (_subscribers.TryGetValue(jobId, out var handlers)) handlers.TryRemove(id, out _);
        });
    }

    /// <summary>Calls <paramref name="handler"/> for every new event of any job (the jobs list) until the handle is disposed.</summary>
    public IDisposable SubscribeAll(Func<JobEventMessage, Task> handler)
    {
        var id = Guid.NewGuid();
        _everyJob[id] = handler;
        return new Subscription(() => _everyJob.TryRemove(id, out _));
    }

    public async Task PublishAsync(JobEventMessage message, CancellationToken ct)
    {
        await hub.Clients.Group(JobsHub.Group(message.JobId)).SendAsync("event", message, ct);
        var handlers = _subscribers.TryGetValue(message.JobId, out var forJob) ? forJob.Values.Concat(_everyJob.Values) : _everyJob.Values;
        foreach (var handler in handlers)
        {
            try { await handler(message); }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "A subscriber of job {JobId} failed on event {Seq}", message.JobId, message.Seq);
            }
        }
    }

    private sealed class Subscription(Action dispose) : IDisposable
    {
        private Action? _dispose = dispose;
        public void Dispose() => Interlocked.Exchange(ref _dispose, null)?.Invoke();
    }
}
