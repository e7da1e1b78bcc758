using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MudBlazor;
using Peft.Web.Apis;

namespace Peft.Web.Components.Jobs;

/// <summary>One optimizer step as the charts show it.</summary>
public sealed record StepSample(int Step, double? Loss, double? LearningRate, double? GradNorm, double? TokensPerSecond);

/// <summary>One line of the job's log panel.</summary>
public sealed record JobLogLine(long Seq, string Type, string Text, bool IsError);

/// <summary>
/// What the job page knows from the job's events: the metric series, the progress of the newest step, and the log.
/// Fed first with the stored events, then with live ones; an event already seen (by sequence number) is ignored, so
/// the two feeds may overlap. A resumed attempt repeats steps after its checkpoint: the newer value of a step wins.
/// </summary>
public sealed class JobLiveView
{
    public const int MaxLogLines = 500;
    private readonly SortedDictionary<int, StepSample> _steps = new();
    private readonly SortedDictionary<int, Dictionary<string, double>> _evals = new();
    private readonly LinkedList<JobLogLine> _log = new();

    public long LastSeq { get; private set; }
    public int Step { get; private set; }
    public int TotalSteps { get; private set; }
    public double? EtaSeconds { get; private set; }
    public double? TokensPerSecond { get; private set; }
    /// <summary>The state the newest <c>state</c> event announced (it is written just before the job row changes).</summary>
    public string? AnnouncedState { get; private set; }

    public IReadOnlyCollection<StepSample> Steps => _steps.Values;
    public IReadOnlyCollection<JobLogLine> Log => _log;

    /// <summary>Evaluation rounds by step: <c>eval_loss</c> and any other <c>eval_*</c> metric.</summary>
    public IReadOnlyDictionary<int, Dictionary<string, double>> Evals => _evals;

    /// <summary>0..100 from the newest step and the total; 100 once the job announced success.</summary>
    public double Percent => AnnouncedState == "succeeded" ? 100 : TotalSteps <= 0 ? 0 : Math.Clamp(100.0 * Step / TotalSteps, 0, 100);

    public void Load(IEnumerable<JobEventDto> events)
    {
        foreach (var e in events) Apply(e.Seq, e.Type, e.Json);
    }

    /// <summary>Applies one event; false when it was already applied (or is not JSON).</summary>
    public bool Apply(long seq, string type, string json)
    {
        if (seq <= LastSeq) return false;
        LastSeq = seq;
        JsonObject? o;
        try { o = JsonNode.Parse(json) as JsonObject; }
        catch (JsonException) { o = null; }
        if (o is null) return false;
        switch (type)
        {
            case "step":
                int step = Int(o, "step") ?? 0;
                _steps[step] = new StepSample(step, Num(o, "loss"), Num(o, "lr"), Num(o, "grad_norm"), Num(o, "tokens_per_sec"));
                // Later steps of a crashed attempt are gone: its resume starts over from the checkpoint.
                foreach (var stale in _steps.Keys.Where(k => k > step).ToList()) _steps.Remove(stale);
                Progress(o, step);
                EtaSeconds = Num(o, "eta_s");
                TokensPerSecond = Num(o, "tokens_per_sec") ?? TokensPerSecond;
                break;
            case "start":
                Progress(o, Int(o, "step") ?? 0);
                break;
            case "eval":
                var metrics = o.Where(p => p.Key.StartsWith("eval_", StringComparison.Ordinal) && Num(o, p.Key) is not null)
                    .ToDictionary(p => p.Key, p => Num(o, p.Key)!.Value);
                if (metrics.Count > 0) _evals[Int(o, "step") ?? Step] = metrics;
                break;
            case "state":
                AnnouncedState = Str(o, "state");
                if (AnnouncedState is "succeeded" or "failed" or "cancelled") EtaSeconds = null;
                break;
        }
        AddLog(new JobLogLine(seq, type, Describe(type, o), type == "log" && Str(o, "stream") == "stderr" || Str(o, "state") is "failed" or "crashed"));
        return true;
    }

    private void Progress(JsonObject o, int step)
    {
        Step = step;
        if (Int(o, "total_steps") is int total && total > 0) TotalSteps = total;
    }

    private void AddLog(JobLogLine line)
    {
        _log.AddLast(line);
        while (_log.Count > MaxLogLines) _log.RemoveFirst();
    }

    /// <summary>The step numbers as x-axis labels, about a dozen of them shown (blank between) so long runs stay readable.</summary>
    public string[] StepLabels()
    {
        var steps = _steps.Keys.ToList();
        int every = Math.Max(1, (int)Math.Ceiling(steps.Count / 12.0));
        return steps.Select((s, i) => i % every == 0 || i == steps.Count - 1 ? s.ToString(CultureInfo.InvariantCulture) : "").ToArray();
    }

    /// <summary>Training loss per step, with the evaluation loss at the steps where an evaluation ran (gaps elsewhere).</summary>
    public List<ChartSeries<double>> LossSeries()
    {
        var series = new List<ChartSeries<double>> { Series("loss", _steps.Values.Select(s => s.Loss)) };
        if (_evals.Count > 0)
            series.Add(Series("eval_loss", _steps.Keys.Select(k => _evals.TryGetValue(k, out var m) && m.TryGetValue("eval_loss", out var v) ? v : (double?)null)));
        return series;
    }

    public List<ChartSeries<double>> LearningRateSeries() => [Series("learning rate", _steps.Values.Select(s => s.LearningRate))];

    public List<ChartSeries<double>> GradNormSeries() => [Series("grad norm", _steps.Values.Select(s => s.GradNorm))];

    private static ChartSeries<double> Series(string name, IEnumerable<double?> values) =>
        new() { Name = name, Data = new ChartData<double>(values.ToList()) };

    /// <summary>"1 h 02 min", "3 min 05 s", "12 s"; a dash when unknown.</summary>
    public static string FormatEta(double? seconds)
    {
        if (seconds is not { } s || !double.IsFinite(s) || s < 0) return "–";
        var t = TimeSpan.FromSeconds(Math.Round(s));
        if (t.TotalHours >= 1) return string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalHours} h {t.Minutes:00} min");
        if (t.TotalMinutes >= 1) return string.Create(CultureInfo.InvariantCulture, $"{t.Minutes} min {t.Seconds:00} s");
        return string.Create(CultureInfo.InvariantCulture, $"{t.Seconds} s");
    }

    /// <summary>"850 tokens/s", "12.3k tokens/s"; a dash when unknown.</summary>
    public static string FormatRate(double? tokensPerSecond)
    {
        if (tokensPerSecond is not { } r || !double.IsFinite(r) || r < 0) return "–";
        return r >= 10_000 ? (r / 1000).ToString("0.#", CultureInfo.InvariantCulture) + "k tokens/s" : r.ToString("0", CultureInfo.InvariantCulture) + " tokens/s";
    }

    /// <summary>
    /// An error as a person reads it: the message lines before any stack frame ("   at …") or exception dump.
    /// </summary>
    public static string Readable(string? error)
    {
        if (string.IsNullOrWhiteSpace(error)) return "";
        var kept = new List<string>();
        foreach (var line in error.Split('\n'))
        {
            var t = line.TrimEnd('\r');
            if (t.TrimStart().StartsWith("at ", StringComparison.Ordinal) || t.TrimStart().StartsWith("--- End of", StringComparison.Ordinal)) break;
            kept.Add(t);
        }
        var text = string.Join('\n', kept).Trim();
        return text.Length > 0 ? text : "The job failed; its log has the details.";
    }

    /// <summary>One event as a log line: the trainer's messages verbatim, steps and evaluations as their numbers.</summary>
    public static string Describe(string type, JsonObject o)
    {
        string N(string key, string format = "G4") => Num(o, key)?.ToString(format, CultureInfo.InvariantCulture) ?? "–";
        return type switch
        {
            "step" => $"step {Int(o, "step")}/{Int(o, "total_steps")} loss {N("loss")} lr {N("lr", "G3")} grad norm {N("grad_norm")} · {FormatRate(Num(o, "tokens_per_sec"))}",
            "eval" => $"eval at step {Int(o, "step")}: " + string.Join(", ", o.Where(p => p.Key.StartsWith("eval_", StringComparison.Ordinal))
                .Select(p => $"{p.Key} {N(p.Key)}")),
            "state" => $"state → {Str(o, "state")}" + (Str(o, "message") is { Length: > 0 } m ? $": {Readable(m)}" : ""),
            "attempt" => $"attempt {Int(o, "attempt")} started",
            "checkpoint" => $"checkpoint at step {Int(o, "step")}",
            "start" => $"training started: {Int(o, "total_steps")} steps" + (Str(o, "message") is { Length: > 0 } sm ? $" ({sm})" : ""),
            "done" => $"training finished at step {Int(o, "step")}",
            _ => Str(o, "message") ?? o.ToJsonString(),
        };
    }

    private static int? Int(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue<int>(out var i) ? i : null;

    private static string? Str(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static double? Num(JsonObject o, string key) => o[key] switch
    {
        JsonValue v when v.TryGetValue<double>(out var d) => d,
        JsonValue v when v.TryGetValue<string>(out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var p) => p,
        _ => null,
    };
}

/// <summary>
/// How a chart draws values up to <see cref="For"/>'s maximum: multiplied by <see cref="Scale"/> (10^-<see cref="Exponent"/>)
/// when it is below 1 (MudChart's tick spacing is a whole number), so the largest is at least 1, with a tick every <see cref="Ticks"/> (1, 2 or 5 × 10^n; about four ticks).
/// </summary>
public sealed record ChartAxis(double Scale, int Exponent, int Ticks)
{
    public static ChartAxis For(double max)
    {
        if (!double.IsFinite(max) || max <= 0) return new ChartAxis(1, 0, 1);
        int exponent = 0;
        while (max * Math.Pow(10, -exponent) < 1 && exponent > -15) exponent--;
        double top = max * Math.Pow(10, -exponent);
        double raw = top / 4, magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1, 2, 5, 10 }.Select(m => m * magnitude).First(s => s >= raw);
        return new ChartAxis(Math.Pow(10, -exponent), exponent, Math.Max(1, (int)Math.Round(step)));
    }
}
