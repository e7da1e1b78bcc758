using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Peft.Training.Serving;

namespace Peft.Tests.Serving;

/// <summary>The engine's instruments report what happened, per adapter.</summary>
public class ServingMetricsTests
{
    [Fact]
    public async Task RequestsTokensLatencyCacheAndOccupancyAreRecordedPerAdapter()
    {
        using var fx = new ServingFixture();
        using var metrics = new ServingMetrics();
        var longs = new ConcurrentBag<(string Name, long Value, Dictionary<string, object?> Tags)>();
        var doubles = new ConcurrentBag<(string Name, double Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (ReferenceEquals(i.Meter, metrics.Meter)) l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => longs.Add((i.Name, v, tags.ToArray().ToDictionary(t => t.Key, t => t.Value))));
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => doubles.Add((i.Name, v, tags.ToArray().ToDictionary(t => t.Key, t => t.Value))));
        listener.Start();

        // A device budget of zero: every idle adapter is detached after use, so evictions are recorded too.
        var (engine, cache) = fx.Engine(metrics: metrics, cacheOptions: new() { BaseModelName = ServingFixture.BaseCase, DeviceBudgetBytes = 0 });
        using var _ = engine;
        using var __ = cache;
        var p = new SamplingParams { MaxTokens = 5, Temperature = 0, StopAtEos = false };
        var first = engine.Submit([1, 2, 3], p, await cache.AcquireAsync("a", default));
        var second = engine.Submit([1, 4], p, await cache.AcquireAsync("a", default));
        var onBase = engine.Submit([1, 7, 7], p, null);
        await Task.WhenAll(first.Completion, second.Completion, onBase.Completion);

        long Sum(string name, string? adapter) => longs.Where(m => m.Name == name && (adapter is null || Equals(m.Tags.GetValueOrDefault("adapter"), adapter))).Sum(m => m.Value);
        Assert.Equal(2, Sum("peft.serving.requests", "a@1"));
        Assert.Equal(1, Sum("peft.serving.requests", "__base__"));
        Assert.Equal(10, Sum("peft.serving.generated_tokens", "a@1"));
        Assert.Equal(8, Sum("peft.serving.prompt_tokens", null));
        Assert.Equal(1, Sum("peft.serving.adapter_cache.misses", "a@1"));
        Assert.Equal(1, Sum("peft.serving.adapter_cache.hits", "a@1"));   // the second lookup of a found it loading or loaded
        var onB = engine.Submit([1, 2], p, await cache.AcquireAsync("b", default));
        await onB.Completion;
        Assert.Equal(1, Sum("peft.serving.adapter_cache.misses", "b@1"));
        Assert.True(Sum("peft.serving.adapter_cache.evictions", "a@1") >= 1, "a@1, idle and over the device budget, was evicted when b@1 attached");
        Assert.Equal(4, doubles.Count(m => m.Name == "peft.serving.time_to_first_token"));
        Assert.Equal(2, doubles.Count(m => m.Name == "peft.serving.request_duration" && Equals(m.Tags["adapter"], "a@1")));
        Assert.Contains(doubles, m => m.Name == "peft.serving.batch_occupancy" && m.Value >= 2);
        Assert.Equal(10, cache.Snapshot().Single(s => s.Key == "a@1").Tokens);
    }
}
