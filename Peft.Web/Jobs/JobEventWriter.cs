using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Peft.Storage.Infrastructure;
using Peft.Storage.Model;

namespace Peft.Web.Jobs;

/// <summary>
/// Persists one attempt's events in order: each is numbered (the SSE id) and written together with the job's
/// progress fields in one transaction, conditioned on the attempt's fencing token.
/// </summary>
internal sealed class JobEventWriter(CatalogDbContext db, Lease lease, long lastSeq, int attempt, TimeProvider clock)
{
    private long _seq = lastSeq;

    private DateTimeOffset? _lastStepAt;

    /// <summary>Called with the wall time between two consecutive step events of this attempt.</summary>
    public Action<TimeSpan>? StepTook { get; init; }

    public JsonObject? LastDone { get; private set; }
    public string? LastError { get; private set; }

    /// <summary>Writes a stdout line (a JSON event) or a stderr/log line; false when the lease is lost.</summary>
    public async Task<bool> AppendAsync(string line, bool isError, CancellationToken ct)
    {
        JsonObject? evt = null;
        if (!isError)
        {
            try { evt = JsonNode.Parse(line) as JsonObject; }
            catch (System.Text.Json.JsonException) { }
        }
        if (evt is null)
        {
            if (line.StartsWith("error:", StringComparison.Ordinal)) LastError = line["error:".Length..].Trim();
            evt = new JsonObject { ["type"] = "log", ["message"] = line, ["stream"] = isError ? "stderr" : "stdout" };
        }
        return await AppendAsync(evt, ct);
    }

    public async Task<bool> AppendAsync(JsonObject evt, CancellationToken ct)
    {
        string type = evt["type"]?.GetValue<string>() ?? "log";
        if (type == "done") LastDone = evt;
        long seq = _seq + 1;
        var now = clock.GetUtcNow();
        var e = new JobEvent
        {
            JobId = lease.JobId,
            Seq = seq,
            Attempt = attempt,
            Type = type,
            Step = Int(evt, "step") ?? 0,
            Loss = Num(evt, "loss"),
            LearningRate = Num(evt, "lr"),
            GradNorm = Num(evt, "grad_norm"),
            TokensPerSecond = Num(evt, "tokens_per_sec"),
            EvalLoss = Num(evt, "eval_loss"),
            Json = evt.ToJsonString(),
            At = now,
        };
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        int? step = type is "step" or "start" ? e.Step : null;
        int? total = Int(evt, "total_steps");
        string? checkpoint = type == "checkpoint" || (type == "cancelled" && evt["path"] is not null) ? evt["path"]?.GetValue<string>() : null;
        int kept = await db.TrainingJobs.Where(j => j.Id == lease.JobId && j.LeaseToken == lease.Token && j.LeaseOwner == lease.Owner)
            .ExecuteUpdateAsync(s =>
            {
                s.SetProperty(j => j.LastEventSeq, seq).SetProperty(j => j.UpdatedAt, now);
                if (step is int st) s.SetProperty(j => j.Step, st);
                if (total is int t && t > 0) s.SetProperty(j => j.TotalSteps, t);
                if (type == "step" && e.Loss is double l) s.SetProperty(j => j.LastLoss, l);
                if (checkpoint is not null) s.SetProperty(j => j.LastCheckpoint, checkpoint);
            }, ct);
        if (kept == 0) return false;
        db.JobEvents.Add(e);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        db.ChangeTracker.Clear();
        _seq = seq;
        if (type == "step")
        {
            if (_lastStepAt is { } previous) StepTook?.Invoke(now - previous);
            _lastStepAt = now;
        }
        return true;
    }

    private static int? Int(JsonObject o, string key) =>
        o[key] is JsonValue v && v.TryGetValue<int>(out var i) ? i : null;

    private static double? Num(JsonObject o, string key) => o[key] switch
    {
        JsonValue v when v.TryGetValue<double>(out var d) => d,
        JsonValue v when v.TryGetValue<string>(out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var p) => p,
        _ => null,
    };
}
