using System.Diagnostics.Metrics;

namespace Peft.Training.Serving;

/// <summary>
/// The server's instruments on one <see cref="Meter"/> ("Peft.Serving"), tagged by adapter (or cache tier), for an
/// OpenTelemetry / Prometheus exporter to pick up. Created per engine so tests can listen to one instance.
/// </summary>
public sealed class ServingMetrics : IDisposable
{
    public const string MeterName = "Peft.Serving";

    private readonly Meter _meter;
    private readonly Counter<long> _requests, _tokens, _promptTokens, _hits, _misses, _evictions, _failures;
    private readonly Histogram<double> _latency, _ttft, _occupancy;

    public ServingMetrics(IMeterFactory? factory = null)
    {
        _meter = factory?.Create(MeterName) ?? new Meter(MeterName);
        _requests = _meter.CreateCounter<long>("peft.serving.requests", "{request}", "Finished sequences, by adapter and finish reason");
        _failures = _meter.CreateCounter<long>("peft.serving.failures", "{request}", "Sequences that ended with an error, by adapter");
        _tokens = _meter.CreateCounter<long>("peft.serving.generated_tokens", "{token}", "Generated tokens, by adapter");
        _promptTokens = _meter.CreateCounter<long>("peft.serving.prompt_tokens", "{token}", "Prompt tokens prefilled, by adapter");
        _latency = _meter.CreateHistogram<double>("peft.serving.request_duration", "s", "Time from submission to the last token, by adapter");
        _ttft = _meter.CreateHistogram<double>("peft.serving.time_to_first_token", "s", "Time from submission to the first token, by adapter");
        _occupancy = _meter.CreateHistogram<double>("peft.serving.batch_occupancy", "{sequence}", "Sequences in each decode step");
        _hits = _meter.CreateCounter<long>("peft.serving.adapter_cache.hits", "{lookup}", "Adapter lookups served from memory, by adapter and tier");
        _misses = _meter.CreateCounter<long>("peft.serving.adapter_cache.misses", "{lookup}", "Adapter lookups that read the disk, by adapter");
        _evictions = _meter.CreateCounter<long>("peft.serving.adapter_cache.evictions", "{adapter}", "Adapters evicted, by adapter and tier");
    }

    public Meter Meter => _meter;

    private static KeyValuePair<string, object?> Adapter(string adapter) => new("adapter", adapter);

    internal void Finished(string adapter, string reason, int tokens, int promptTokens, TimeSpan latency)
    {
        _requests.Add(1, Adapter(adapter), new("finish_reason", reason));
        _tokens.Add(tokens, Adapter(adapter));
        _promptTokens.Add(promptTokens, Adapter(adapter));
        _latency.Record(latency.TotalSeconds, Adapter(adapter));
    }

    internal void Failed(string adapter) => _failures.Add(1, Adapter(adapter));
    internal void FirstToken(string adapter, TimeSpan ttft) => _ttft.Record(ttft.TotalSeconds, Adapter(adapter));
    internal void BatchOccupancy(int rows) => _occupancy.Record(rows);
    internal void CacheHit(string adapter, string tier) => _hits.Add(1, Adapter(adapter), new("tier", tier));
    internal void CacheMiss(string adapter) => _misses.Add(1, Adapter(adapter));
    internal void Eviction(string adapter, string tier) => _evictions.Add(1, Adapter(adapter), new("tier", tier));

    public void Dispose() => _meter.Dispose();
}
