using System.Globalization;
using System.Security.Claims;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Peft.Core;
using Peft.Storage.Model;
using Peft.Web.Extensions;
using Peft.Web.Jobs;

namespace Peft.Web.Apis;

public static class JobsApi
{
    public static IEndpointRouteBuilder MapJobsApi(this IEndpointRouteBuilder app)
    {
        // Reading (list, get, events, metrics, logs) needs hub:read; submit, cancel, resume and clone need hub:train.
        var api = app.MapGroup("/api/jobs").WithTags("Jobs").RequireReadOrTrain();

        api.MapPost("/", async Task<Created<JobDto>> ([FromBody] JsonNode? body, JobService jobs, ClaimsPrincipal user, CancellationToken ct) =>
            {
                var job = await jobs.SubmitAsync(body, user.Identity?.Name, ct);
                return TypedResults.Created($"/api/jobs/{job.Id}", job);
            })
            .WithName("SubmitJob")
            .WithSummary("Submit a fine-tuning job")
            .WithDescription("JSON: base_model and dataset (catalog names), adapter_name, optional queue (cpu|gpu), priority (high|normal|low), " +
                             "and any key `peft train --config` accepts (method, r, lora_alpha, target_modules, lr, max_steps, ...). " +
                             "Validated against the base model and dataset before anything is queued: 400 malformed, 404 unknown names, 422 unusable values.");

        api.MapGet("/", async Task<Ok<JobPageDto>> (JobService jobs, CancellationToken ct, string? state = null,
                [FromQuery(Name = "base_model")] string? baseModel = null, string? adapter = null,
                [FromQuery(Name = "submitted_by")] string? submittedBy = null, string? queue = null, int page = 1, [FromQuery(Name = "page_size")] int pageSize = 20) =>
            {
                JobState? st = null;
                if (state is not null)
                    st = Enum.TryParse<JobState>(state, ignoreCase: true, out var s) && Enum.IsDefined(s) ? s
                        : throw new PeftUserException($"state: expected queued, running, succeeded, failed or cancelled, got '{state}'", UserErrorKind.BadRequest);
                return TypedResults.Ok(await jobs.ListAsync(new JobQuery { State = st, BaseModel = baseModel, Adapter = adapter, SubmittedBy = submittedBy, Queue = queue, Page = page, PageSize = pageSize }, ct));
            })
            .WithName("ListJobs")
            .WithSummary("List jobs, newest first")
            .WithDescription("Filters: state, base_model, adapter, submitted_by, queue; paging: page, page_size (1..200).");

        api.MapGet("/{id:long}", async Task<Ok<JobDto>> (long id, JobService jobs, CancellationToken ct) => TypedResults.Ok(await jobs.GetAsync(id, ct)))
            .WithName("GetJob")
            .WithSummary("Get a job")
            .WithDescription("State, attempt, progress, ETA (from the recent step times), error, and the adapter version it registered.");

        api.MapGet("/{id:long}/events", async Task (long id, HttpContext http, JobService jobs, CancellationToken ct,
                [FromHeader(Name = "Last-Event-ID")] string? lastEventId = null, long? after = null) =>
            {
                await jobs.GetAsync(id, ct); // 404 before the stream starts
                long last = after ?? (long.TryParse(lastEventId, NumberStyles.None, CultureInfo.InvariantCulture, out var l) ? l : 0);
                http.Response.ContentType = "text/event-stream";
                http.Response.Headers.CacheControl = "no-cache";
                await http.Response.Body.FlushAsync(ct);
                while (!ct.IsCancellationRequested)
                {
                    var batch = await jobs.EventsAsync(id, last, 500, ct);
                    foreach (var e in batch)
                    {
                        await http.Response.WriteAsync($"id: {e.Seq}\nevent: {e.Type}\ndata: {e.Json}\n\n", ct);
                        last = e.Seq;
                    }
                    if (batch.Count > 0) await http.Response.Body.FlushAsync(ct);
                    if (batch.Count == 0)
                    {
                        if (await jobs.IsFinishedThroughAsync(id, last, ct)) return;
                        await Task.Delay(250, ct);
                    }
                }
            })
            .WithName("JobEvents")
            .WithSummary("Job events as server-sent events")
            .WithDescription("Every persisted event (start, step, eval, checkpoint, log, state, done) with its sequence number as the SSE id; " +
                             "reconnect with Last-Event-ID (or ?after=N) to continue. The stream ends after the job's final event.")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");

        api.MapGet("/{id:long}/metrics", async Task<Ok<JobMetricsDto>> (long id, JobService jobs, CancellationToken ct) =>
                TypedResults.Ok(await jobs.MetricsAsync(id, ct)))
            .WithName("JobMetrics")
            .WithSummary("Metric series of a job")
            .WithDescription("Per step: loss, learning rate, grad norm, tokens/s; per evaluation: eval loss. A resumed attempt's steps follow the checkpoint's.");

        api.MapGet("/{id:long}/logs", async Task<ContentHttpResult> (long id, JobService jobs, CancellationToken ct) =>
                TypedResults.Text(await jobs.LogsAsync(id, ct), "text/plain"))
            .WithName("JobLogs")
            .WithSummary("Job log as text")
            .WithDescription("Every event and every line the training process wrote to stderr, with time and attempt.");

        api.MapDelete("/{id:long}", async Task<Accepted<JobDto>> (long id, JobService jobs, CancellationToken ct) =>
                TypedResults.Accepted($"/api/jobs/{id}", await jobs.CancelAsync(id, ct)))
            .WithName("CancelJob")
            .WithSummary("Cancel a job")
            .WithDescription("A queued job is cancelled at once; a running one stops gracefully (the trainer writes a checkpoint) and becomes cancelled. 409 if already finished.");

        api.MapPost("/{id:long}/resume", async Task<Accepted<JobDto>> (long id, JobService jobs, CancellationToken ct) =>
                TypedResults.Accepted($"/api/jobs/{id}", await jobs.ResumeAsync(id, ct)))
            .WithName("ResumeJob")
            .WithSummary("Resume a failed or cancelled job")
            .WithDescription("Queues it again; training continues from its newest checkpoint. 409 for other states or for failures caused by the input.");

        api.MapPost("/{id:long}/clone", async Task<Created<JobDto>> (long id, [FromBody] JsonObject? edits, JobService jobs, ClaimsPrincipal user,
                CancellationToken ct) =>
            {
                var job = await jobs.CloneAsync(id, edits, user.Identity?.Name, ct);
                return TypedResults.Created($"/api/jobs/{job.Id}", job);
            })
            .WithName("CloneJob")
            .WithSummary("Clone a job with edits")
            .WithDescription("A new job from this one's request with the given keys replaced (null removes a key), validated like a new submission.");
        return app;
    }
}
