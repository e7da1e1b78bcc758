using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Peft.Web.Jobs;

namespace Peft.Tests.Jobs;

/// <summary>Records the <c>Peft.Jobs</c> instruments of one host (its meter factory), not those of other test hosts.</summary>
public sealed class JobMeterRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, (double Sum, long Count)> _totals = new();

    public JobMeterRecorder(IMeterFactory factory)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == JobMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, factory)) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, _, _) => Add(i.Name, v));
        _listener.SetMeasurementEventCallback<double>((i, v, _, _) => Add(i.Name, v));
        _listener.Start();
    }

    private void Add(string name, double value) => _totals.AddOrUpdate(name, (value, 1), (_, t) => (t.Sum + value, t.Count + 1));

    public double Total(string name) => _totals.TryGetValue(name, out var t) ? t.Sum : 0;

    public long Count(string name) => _totals.TryGetValue(name, out var t) ? t.Count : 0;

    public void Dispose() => _listener.Dispose();
}
