using System.Diagnostics.Metrics;

namespace Peft.Web.Jobs;

/// <summary>
/// Job instruments on the <c>Peft.Jobs</c> meter (an exporter picks up <c>Peft.*</c> meters): jobs submitted, succeeded,
/// failed and cancelled (counters, tagged by queue), jobs running in this process (gauge) and the seconds between two
/// optimizer steps (histogram).
/// </summary>
public sealed class JobMetrics : IDisposable
{
    public const string MeterName = "Peft.Jobs";
    private readonly Meter _meter;
    private readonly Counter<long> _submitted, _succeeded, _failed, _cancelled;
    private readonly Histogram<double> _stepDuration;
    private int _running;

    public JobMetrics(IMeterFactory meters)
    {
        _meter = meters.Create(MeterName);
        _submitted = _meter.CreateCounter<long>("peft.jobs.submitted", "{job}", "Jobs accepted and queued");
        _succeeded = _meter.CreateCounter<long>("peft.jobs.succeeded", "{job}", "Jobs that registered their adapter version");
        _failed = _meter.CreateCounter<long>("peft.jobs.failed", "{job}", "Jobs that ended failed");
        _cancelled = _meter.CreateCounter<long>("peft.jobs.cancelled", "{job}", "Jobs that ended cancelled");
        _meter.CreateObservableGauge("peft.jobs.running", () => Volatile.Read(ref _running), "{job}", "Training processes this process supervises");
        _stepDuration = _meter.CreateHistogram<double>("peft.jobs.step.duration", "s", "Wall time of one optimizer step");
    }

    public void Submitted(string queue) => _submitted.Add(1, new KeyValuePair<string, object?>("queue", queue));
    public void Succeeded(string queue) => _succeeded.Add(1, new KeyValuePair<string, object?>("queue", queue));
    public void Failed(string queue) => _failed.Add(1, new KeyValuePair<string, object?>("queue", queue));
    public void Cancelled(string queue) => _cancelled.Add(1, new KeyValuePair<string, object?>("queue", queue));
    public void StepTook(TimeSpan duration, string queue) => _stepDuration.Record(duration.TotalSeconds, new KeyValuePair<string, object?>("queue", queue));

    /// <summary>Counts a supervised training process until the returned handle is disposed.</summary>
    public IDisposable Running()
    {
        Interlocked.Increment(ref _running);
        return new Decrement(this);
    }

    public int RunningCount => Volatile.Read(ref _running);

    private sealed class Decrement(JobMetrics owner) : IDisposable
    {
        private int _done;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) Interlocked.Decrement(ref owner._running);
        }
    }

    public void Dispose() => _meter.Dispose();
}
