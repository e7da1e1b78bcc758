using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Tests.Support;
using Peft.Training.Serving;
using Peft.Training.Serving.Adapters;

namespace Peft.Tests.Serving;

/// <summary>Versions, aliases, hot swap, eviction, pinning and per-request merges through the engine.</summary>
public class AdapterCacheTests
{
    private static readonly SamplingParams Greedy = new() { MaxTokens = 6, Temperature = 0, StopAtEos = false };
    private static readonly int[] Prompt = [1, 5, 9, 13];

    private static async Task<SequenceResult> Run(ServingEngine engine, string adapter, SamplingParams? p = null) =>
        await engine.Submit(Prompt, p ?? Greedy, await engine.Adapters.AcquireAsync(adapter, default)).Completion.WaitAsync(TimeSpan.FromMinutes(2));

    private static IEnumerable<int> Ids(SequenceResult r) => r.Tokens.Select(t => t.TokenId);

    [Fact]
    public async Task NewVersionAndAliasMovesServeNewRequestsWhileRunningOnesFinishOnTheirVersion()
    {
        using var fx = new ServingFixture();
        var (engine, cache) = fx.Engine();
        using var _ = engine;
        using var __ = cache;
        var v1 = await Run(engine, "a");
        var onB = await Run(engine, "b");
        Assert.NotEqual(Ids(v1), Ids(onB));

        // A long sequence leases a@1; then version 2 (b's weights) appears.
        var running = engine.Submit(Prompt, Greedy with { MaxTokens = 30 }, await cache.AcquireAsync("a", default));
        await running.Tokens.ReadAsync();
        fx.CopyAdapter(Path.Combine(GoldenData.Dir(ServingFixture.MixedCase), "adapter_b"), "a", 2);
        var v2 = await Run(engine, "a");
        Assert.Equal(Ids(onB), Ids(v2));
        var longAlone = await Run(engine, "a@1", Greedy with { MaxTokens = 30 });
        Assert.Equal(Ids(longAlone), Ids(await running.Completion));
        Assert.Equal(Ids(v1), Ids(await Run(engine, "a@1")));

        // Aliases: moving one changes what the next request gets.
        var aliases = Path.Combine(fx.Root, "a", FolderAdapterSource.AliasesFileName);
        File.WriteAllText(aliases, """{"production": 1}""");
        Assert.Equal(Ids(v1), Ids(await Run(engine, "a@production")));
        File.WriteAllText(aliases, """{"production": 2}""");
        Assert.Equal(Ids(onB), Ids(await Run(engine, "a@production")));
        Assert.Equal(UserErrorKind.NotFound, (await Assert.ThrowsAsync<PeftUserException>(() => cache.AcquireAsync("a@staging", default))).Kind);
        var keys = cache.Snapshot().Select(s => s.Key).ToList();
        Assert.Contains("a@1", keys);
        Assert.Contains("a@2", keys);
    }

    [Fact]
    public async Task OverBudgetIdleAdaptersAreEvictedButNeverOneInUseOrPinned()
    {
        using var fx = new ServingFixture();
        // Device budget below one adapter: every idle adapter leaves the model as soon as another one attaches.
        var (engine, cache) = fx.Engine(cacheOptions: new AdapterCacheOptions { DeviceBudgetBytes = 1, HostBudgetBytes = 1, BaseModelName = ServingFixture.BaseCase });
        using var _ = engine;
        using var __ = cache;
        var aloneA = await Run(engine, "a", Greedy with { MaxTokens = 25 });
        var aloneB = await Run(engine, "b");
        Assert.Equal("device", cache.Snapshot().Single(s => s.Key == "b@1").Tier);   // last attached stays until the next
        Assert.DoesNotContain(cache.Snapshot(), s => s.Key == "a@1");                  // idle, over both budgets: back to disk

        var running = engine.Submit(Prompt, Greedy with { MaxTokens = 25 }, await cache.AcquireAsync("a", default));
        await running.Tokens.ReadAsync();
        var b = await Run(engine, "b");
        var c = await Run(engine, "c");
        var snap = cache.Snapshot().Single(s => s.Key == "a@1");
        Assert.Equal("device", snap.Tier);
        Assert.Equal(1, snap.ActiveSequences);
        Assert.Equal(Ids(aloneA), Ids(await running.Completion));
        Assert.Equal(Ids(aloneB), Ids(b));
        Assert.True(cache.Evictions > 0);

        Assert.True(await cache.PinAsync("c", true, default));
        await Run(engine, "b");
        Assert.Equal("device", cache.Snapshot().Single(s => s.Key == "c@1").Tier);
        Assert.True(cache.Misses >= 3 && cache.Hits >= 0);
    }

    [Fact]
    public async Task MergedAdaptersAreBuiltOnceAndALinearMergeOfOneIsThatAdapter()
    {
        using var fx = new ServingFixture();
        var (engine, cache) = fx.Engine();
        using var _ = engine;
        using var __ = cache;
        var a = await Run(engine, "a");
        var single = await engine.Submit(Prompt, Greedy, await cache.AcquireMergedAsync(new MergeSpec(["a"], [1.0], "linear", null), default)).Completion;
        Assert.Equal(Ids(a), Ids(single));

        var spec = new MergeSpec(["a", "b"], [0.7, 0.6], "ties", 0.5);
        var first = await engine.Submit(Prompt, Greedy, await cache.AcquireMergedAsync(spec, default)).Completion;
        long misses = cache.Misses;
        var second = await engine.Submit(Prompt, Greedy, await cache.AcquireMergedAsync(spec with { Ids = ["a@1", "b@1"] }, default)).Completion;
        Assert.Equal(misses, cache.Misses);   // same content (a@1 is a) → same entry, not rebuilt
        Assert.Equal(Ids(first), Ids(second));
        Assert.Single(cache.Snapshot(), s => s.Key.StartsWith("merge:", StringComparison.Ordinal) && s.Requests == 2);

        var bad = await Assert.ThrowsAsync<PeftUserException>(() => cache.AcquireMergedAsync(spec with { Density = null }, default));
        Assert.Contains("density", bad.Message);
        await Assert.ThrowsAsync<PeftUserException>(() => cache.AcquireMergedAsync(spec with { Strategy = "svd" }, default));
    }

    [Fact]
    public async Task ForeignAndUnsupportedAdaptersAreRefusedClearly()
    {
        using var fx = new ServingFixture();
        var (engine, cache) = fx.Engine();
        using var _ = engine;
        using var __ = cache;
        // Same layout, another declared base: 409.
        fx.CopyAdapter(Path.Combine(GoldenData.Dir(ServingFixture.MixedCase), "adapter_a"), "foreign", 1);
        var cfgPath = Path.Combine(fx.Root, "foreign", "1", "adapter_config.json");
        var cfg = JsonNode.Parse(File.ReadAllText(cfgPath))!;
        cfg["base_model_name_or_path"] = "gpt2_base";
        File.WriteAllText(cfgPath, cfg.ToJsonString());
        Assert.Equal(UserErrorKind.Conflict, (await Assert.ThrowsAsync<PeftUserException>(() => cache.AcquireAsync("foreign", default))).Kind);
        // An adapter made for GPT-2 but not declaring it: refused when its tensors do not fit (409), the server stays up.
        fx.CopyAdapter(Path.Combine(GoldenData.Dir("gpt2_lora_mixed_batch"), "adapter_a"), "gpt", 1);
        var gptCfg = Path.Combine(fx.Root, "gpt", "1", "adapter_config.json");
        var g = JsonNode.Parse(File.ReadAllText(gptCfg))!;
        g["base_model_name_or_path"] = null;
        g["target_modules"] = new JsonArray("q_proj");
        File.WriteAllText(gptCfg, g.ToJsonString());
        var lease = await cache.AcquireAsync("gpt", default);
        var failed = await Assert.ThrowsAsync<PeftUserException>(() => engine.Submit(Prompt, Greedy, lease).Completion);
        Assert.Equal(UserErrorKind.Conflict, failed.Kind);
        // Prompt tuning for sequence classification: 422 naming the method (only causal-LM prompt methods are served).
        Directory.CreateDirectory(Path.Combine(fx.Root, "ptcls"));
        foreach (var f in new[] { "adapter_config.json", "adapter_model.safetensors" })
            File.Copy(Path.Combine(GoldenData.Dir("llama_prompt_tuning"), f), Path.Combine(fx.Root, "ptcls", f));
        var clsCfg = Path.Combine(fx.Root, "ptcls", "adapter_config.json");
        var cls = JsonNode.Parse(File.ReadAllText(clsCfg))!;
        cls["task_type"] = "SEQ_CLS";
        File.WriteAllText(clsCfg, cls.ToJsonString());
        var refused = await Assert.ThrowsAsync<PeftUserException>(() => cache.AcquireAsync("ptcls", default));
        Assert.Equal(UserErrorKind.Invalid, refused.Kind);
        Assert.Contains("PROMPT_TUNING", refused.Message);
        Assert.Contains("SEQ_CLS", refused.Message);
        // Still serving.
        Assert.Equal(6, (await Run(engine, "a")).Tokens.Count);
    }
}
