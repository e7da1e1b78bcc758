using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Web.Apis;
using Peft.Web.Infrastructure;
using Peft.Web.Jobs;

namespace Peft.Web.Components.Jobs;

/// <summary>What the jobs list and the job page share about reading jobs as their events arrive.</summary>
public static class JobPageSupport
{
    public static bool IsFinished(string state) => state is "succeeded" or "failed" or "cancelled";

    /// <summary>The final state a <c>state</c> event announces, or null for any other event.</summary>
    public static string? AnnouncedEnd(JobEventMessage m)
    {
        if (m.Type != "state") return null;
        try { return JsonNode.Parse(m.Json)?["state"]?.GetValue<string>() is { } s && IsFinished(s) ? s : null; }
        catch (Exception e) when (e is JsonException or InvalidOperationException) { return null; }
    }

    /// <summary>
    /// The job once its row shows the state its last event announced: the runner writes that event just before it
    /// releases the job, so for a moment the row may still say running. Bounded (about 10 s), then the row as it is.
    /// </summary>
    public static async Task<JobDto> SettledAsync(ServiceRunner services, long id, CancellationToken ct)
    {
        for (int i = 0; ; i++)
        {
            var job = await services.RunAsync<JobService, JobDto>(s => s.GetAsync(id, ct));
            if (IsFinished(job.State) || i >= 40) return job;
            await Task.Delay(250, ct);
        }
    }
}
