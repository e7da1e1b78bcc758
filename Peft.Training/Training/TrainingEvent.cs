using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Training.Training;

/// <summary>What a <see cref="TrainingEvent"/> reports; <see cref="Warning"/> carries a setting the run changed (its <see cref="TrainingEvent.Message"/> says why).</summary>
public enum TrainingEventKind { Started, Step, Evaluation, Checkpoint, EarlyStopped, Cancelled, Completed, Warning }

/// <summary>
/// One progress report. Every optimizer step emits a <see cref="TrainingEventKind.Step"/> whose <see cref="Loss"/> is
/// the loss of the batch that step trained on (computed before its update). <see cref="ToJson"/> gives the one-line
/// form (<c>{"type":"step","step":k,"loss":…,"lr":…,…}</c>) the CLI prints and a job queue can store.
/// </summary>
public sealed record TrainingEvent
{
    public required TrainingEventKind Kind { get; init; }
    /// <summary>Optimizer steps completed.</summary>
    public int Step { get; init; }
    public int TotalSteps { get; init; }
    /// <summary>Fractional epoch (2.5 = halfway through the third epoch).</summary>
    public double Epoch { get; init; }
    public double? Loss { get; init; }
    public double? LearningRate { get; init; }
    /// <summary>Global gradient L2 norm before clipping.</summary>
    public double? GradNorm { get; init; }
    public double? TokensPerSecond { get; init; }
    public TimeSpan Elapsed { get; init; }
    public TimeSpan? Eta { get; init; }
    /// <summary>Evaluation metrics (<c>eval_loss</c>, <c>eval_perplexity</c>, <c>eval_accuracy</c>, <c>eval_f1</c>).</summary>
    public IReadOnlyDictionary<string, double>? Metrics { get; init; }
    /// <summary>Checkpoint folder, or the output folder for <see cref="TrainingEventKind.Completed"/>.</summary>
    public string? Path { get; init; }
    public string? Message { get; init; }

    public static string TypeName(TrainingEventKind k) => k switch
    {
        TrainingEventKind.Started => "start",
        TrainingEventKind.Step => "step",
        TrainingEventKind.Evaluation => "eval",
        TrainingEventKind.Checkpoint => "checkpoint",
        TrainingEventKind.EarlyStopped => "early_stop",
        TrainingEventKind.Cancelled => "cancelled",
        TrainingEventKind.Warning => "warning",
        _ => "done",
    };

    public JsonObject ToJsonObject()
    {
        var o = new JsonObject { ["type"] = TypeName(Kind), ["step"] = Step, ["total_steps"] = TotalSteps, ["epoch"] = Round(Epoch) };
        if (Loss is { } l) o["loss"] = Num(l);
        if (LearningRate is { } lr) o["lr"] = Num(lr);
        if (GradNorm is { } g) o["grad_norm"] = Num(g);
        if (TokensPerSecond is { } t) o["tokens_per_sec"] = Round(t);
        o["elapsed_s"] = Round(Elapsed.TotalSeconds);
        if (Eta is { } eta) o["eta_s"] = Round(eta.TotalSeconds);
        if (Metrics is not null) foreach (var (k, v) in Metrics) o[k] = Num(v);
        if (Path is not null) o["path"] = Path;
        if (Message is not null) o["message"] = Message;
        return o;
    }

    public string ToJson() => ToJsonObject().ToJsonString(new JsonSerializerOptions { WriteIndented = false });

    // NaN/inf are not JSON: written as strings so a diverged run still produces parseable lines.
    private static JsonNode Num(double v) => double.IsFinite(v) ? JsonValue.Create(v) : JsonValue.Create(v.ToString(CultureInfo.InvariantCulture));

    private static JsonNode Round(double v) => Num(Math.Round(v, 4));
}

/// <summary>Forwards events synchronously (unlike <see cref="Progress{T}"/>, which posts them to a thread pool).</summary>
public sealed class SyncProgress<T>(Action<T> handler) : IProgress<T>
{
    public void Report(T value) => handler(value);
}
