using Peft.Core;
using Peft.Tests.Support;
using Peft.Training.Generation;
using Peft.Training.Models;
using Peft.Training.Serving;
using Peft.Training.Serving.Adapters;
using Peft.Training.Tuners;
using TorchSharp;

namespace Peft.Tests.Serving;

/// <summary>
/// The continuous-batching engine gives every request what it gets alone: same greedy tokens, logits within 1e-4,
/// whatever adapters (ranks 4 and 8, or none) share its batch and whenever it joins.
/// </summary>
public class ServingEngineTests(ServingFixture fx) : IClassFixture<ServingFixture>
{
    private static readonly SamplingParams Greedy = new() { MaxTokens = 8, Temperature = 0, StopAtEos = false };

    private static readonly (string? Adapter, int[] Prompt)[] Requests =
    [
        ("a", [1, 5, 9, 13, 17]),
        ("b", [1, 40, 41]),
        ("c", [1, 7, 7, 7, 7, 7, 30, 31, 32]),
        (null, [1, 100, 3, 64]),
        ("a@1", [1, 2]),
    ];

    private static async Task<SequenceResult> Run(ServingEngine engine, string? adapter, int[] prompt, SamplingParams p)
    {
        var lease = adapter is null ? null : await engine.Adapters.AcquireAsync(adapter, CancellationToken.None);
        return await engine.Submit(prompt, p, lease).Completion.WaitAsync(TimeSpan.FromMinutes(2));
    }

    private static void AssertSame(SequenceResult alone, SequenceResult mixed, string what)
    {
        Assert.Equal(alone.Tokens.Select(t => t.TokenId), mixed.Tokens.Select(t => t.TokenId));
        Assert.Equal(alone.Logits!.Count, mixed.Logits!.Count);
        for (int s = 0; s < alone.Logits.Count; s++)
        {
            double diff = alone.Logits[s].Zip(mixed.Logits[s], (x, y) => Math.Abs(x - y)).Max();
            Assert.True(diff <= 1e-4, $"{what}: step {s} logits differ by {diff:E2}");
        }
    }

    [Fact]
    public async Task MixedBatchGivesEachRowWhatItGetsAlone()
    {
        var (engine, cache) = fx.Engine();
        using var _ = engine;
        using var __ = cache;
        var alone = new List<SequenceResult>();
        foreach (var (adapter, prompt) in Requests) alone.Add(await Run(engine, adapter, prompt, Greedy));
        Assert.Equal(1, engine.PeakBatch);

        var leases = new List<Peft.Training.Serving.Adapters.AdapterLease?>();
        foreach (var (adapter, _) in Requests) leases.Add(adapter is null ? null : await cache.AcquireAsync(adapter, default));
        var mixed = Requests.Select((r, i) => engine.Submit(r.Prompt, Greedy, leases[i])).ToList();
        var results = await Task.WhenAll(mixed.Select(m => m.Completion));
        Assert.True(engine.PeakBatch >= 4, $"requests did not share a batch (peak {engine.PeakBatch})");
        for (int i = 0; i < Requests.Length; i++) AssertSame(alone[i], results[i], $"request {i} ({Requests[i].Adapter ?? "base"})");
        // Different adapters really give different answers on the same prompt (else the test proves nothing).
        var onA = await Run(engine, "a", Requests[2].Prompt, Greedy);
        Assert.NotEqual(onA.Logits![0], results[2].Logits![0]);
    }

    [Fact]
    public async Task EngineMatchesTextGeneratorPerAdapter()
    {
        var (engine, cache) = fx.Engine();
        using var _ = engine;
        using var __ = cache;
        foreach (var (adapter, prompt) in Requests.Take(4))
        {
            var served = await Run(engine, adapter, prompt, Greedy);
            using var scope = torch.NewDisposeScope();
            var model = AutoModel.FromPretrained(GoldenData.Dir(ServingFixture.BaseCase));
            using var peft = adapter is null
                ? PeftModel.ForServing(model, "LORA")
                : PeftModel.FromPretrained(model, Path.Combine(fx.Root, adapter, "1"));
            model.eval();
            var ids = torch.tensor(prompt.Select(x => (long)x).ToArray()).view(1, prompt.Length);
            var opts = new GenerationOptions { MaxNewTokens = 8, DoSample = false, EosTokenIds = [-1], PadTokenId = 0 };
            var generated = adapter is null ? TextGenerator.Generate(model, ids, null, opts) : TextGenerator.Generate(peft, ids, null, opts);
            var tokens = generated.Sequences[0].data<long>().Skip(prompt.Length).Select(x => (int)x);
            Assert.Equal(tokens, served.Tokens.Select(t => t.TokenId));
        }
    }

    [Fact]
    public async Task FirstStepsMatchGoldenMixedBatchLogits()
    {
        var (engine, cache) = fx.Engine();
        using var _ = engine;
        using var __ = cache;
        var e = GoldenData.Expected(ServingFixture.MixedCase);
        var ids = e["input_ids"];
        var mask = e["attention_mask"];
        string[][] cases = [["a", "b"], ["b", null!]];
        string[] keys = ["logits_mixed_a_b", "logits_mixed_b_base"];
        for (int c = 0; c < 2; c++)
        {
            var leases = new List<Peft.Training.Serving.Adapters.AdapterLease?>();
            var prompts = new List<int[]>();
            for (int row = 0; row < 2; row++)
            {
                var rowMask = mask[row].data<long>().ToArray();
                Assert.Equal(1, rowMask[0]);   // right padding (or none): the golden positions are the prompt's own
                prompts.Add(ids[row].data<long>().ToArray().Where((_, i) => rowMask[i] == 1).Select(x => (int)x).ToArray());
                leases.Add(cases[c][row] is { } name ? await cache.AcquireAsync(name, default) : null);
            }
            var reqs = prompts.Select((p, row) => engine.Submit(p, Greedy with { MaxTokens = 1 }, leases[row])).ToList();
            var results = await Task.WhenAll(reqs.Select(r => r.Completion));
            for (int row = 0; row < 2; row++)
            {
                using var expected = e[keys[c]][row, prompts[row].Length - 1];
                using var actual = torch.tensor(results[row].Logits![0]);
                GoldenData.AssertClose(expected, actual, 1e-4, $"{keys[c]} row {row}");
            }
        }
    }

    [Fact]
    public async Task RequestJoiningMidDecodeGetsItsAloneTokens()
    {
        var (engine, cache) = fx.Engine();
        using var _ = engine;
        using var __ = cache;
        var longP = Greedy with { MaxTokens = 20 };
        int[] first = [1, 5, 9];
        int[] late = [1, 8, 8, 20, 21, 22, 23, 24, 25, 26, 27, 28];   // longer than the running cache when it joins
        int[] later = [1, 3];                                           // shorter: it is padded, not the batch
        var aloneFirst = await Run(engine, "a", first, longP);
        var aloneLate = await Run(engine, "c", late, Greedy);
        var aloneLater = await Run(engine, "b", later, Greedy);

        var running = engine.Submit(first, longP, await cache.AcquireAsync("a", default));
        for (int i = 0; i < 3; i++) await running.Tokens.ReadAsync();
        var joined = engine.Submit(late, Greedy, await cache.AcquireAsync("c", default));
        await joined.Tokens.ReadAsync();
        var joined2 = engine.Submit(later, Greedy, await cache.AcquireAsync("b", default));
        AssertSame(aloneFirst, await running.Completion, "running");
        AssertSame(aloneLate, await joined.Completion, "joined");
        AssertSame(aloneLater, await joined2.Completion, "joined later");
        Assert.True(engine.PeakBatch >= 2);
    }

    /// <summary>
    /// Requests that arrive during a decode step are prefilled between two of its layers (one of them on an adapter
    /// attached right there, inside the step) and join after it: each gets what it gets alone, and so does the row
    /// whose step they interrupted. The attached adapter outlives the step (its tensors do not belong to the step).
    /// </summary>
    [Fact]
    public async Task RequestsPrefilledBetweenTheLayersOfAStepGetTheirAloneTokens()
    {
        fx.WriteRank8("m", 1, seed: 11);
        var (engine, cache) = fx.Engine();
        using var _ = engine;
        using var __ = cache;
        var longP = Greedy with { MaxTokens = 16 };
        int[] first = [1, 5, 9], fresh = [1, 7, 30, 31], plain = [1, 100, 3];
        var aloneFresh = await Run(engine, "m", fresh, Greedy);
        await Run(engine, "c", plain, Greedy);
        var aloneFirst = await Run(engine, "a", first, longP);
        var aloneBase = await Run(engine, null, plain, Greedy);
        // Detached: the interrupting request attaches it again mid-step. As in PEFT, deleting the active adapter makes
        // the first remaining one (c) active; the interrupted row is on another (a), so a layer that lost its row
        // names after the nested prefill would give it c's or no LoRA.
        Assert.True(await engine.UnloadAsync("m@1"));
        Assert.Equal(0, engine.PrefillsBetweenLayers);

        var freshLease = await cache.AcquireAsync("m", default);
        Assert.Equal(AdapterTier.Host, freshLease.Entry.Tier);
        InferenceRequest? mid1 = null, mid2 = null;
        int calls = 0;
        engine.BetweenLayers = () =>
        {
            // The 4th layer boundary: the second decode step of `first`, after its first layer.
            if (++calls != 4) return;
            mid1 = engine.Submit(fresh, Greedy, freshLease);
            mid2 = engine.Submit(plain, Greedy, null);
        };
        var running = engine.Submit(first, longP, await cache.AcquireAsync("a", default));
        AssertSame(aloneFirst, await running.Completion.WaitAsync(TimeSpan.FromMinutes(2)), "interrupted row");
        Assert.NotNull(mid1);
        AssertSame(aloneFresh, await mid1!.Completion.WaitAsync(TimeSpan.FromMinutes(2)), "prefilled mid-step on a newly attached adapter");
        AssertSame(aloneBase, await mid2!.Completion.WaitAsync(TimeSpan.FromMinutes(2)), "prefilled mid-step on the base");
        Assert.Equal(2, engine.PrefillsBetweenLayers);
        Assert.True(engine.PeakBatch >= 3, $"the mid-step requests did not join the batch (peak {engine.PeakBatch})");
        // Still usable after the step that attached it ended.
        AssertSame(aloneFresh, await Run(engine, "m", fresh, Greedy), "the adapter attached mid-step, later");
    }

    [Fact]
    public async Task SeededSamplingIsPerRequestAndPenaltiesApply()
    {
        var (engine, cache) = fx.Engine();
        using var _ = engine;
        using var __ = cache;
        var sample = new SamplingParams { MaxTokens = 12, Temperature = 0.9, TopP = 0.95, Seed = 1234, StopAtEos = false, Logprobs = 2 };
        int[] prompt = [1, 5, 9, 13];
        var alone = await Run(engine, "b", prompt, sample);
        // The same seed in a batch with other sampled rows draws the same tokens.
        var others = Enumerable.Range(0, 3).Select(i => engine.Submit([1, 2, 3 + i], sample with { Seed = i }, null)).ToList();
        var again = engine.Submit(prompt, sample, await cache.AcquireAsync("b", default));
        await Task.WhenAll(others.Select(o => o.Completion));
        var r = await again.Completion;
        Assert.Equal(alone.Tokens.Select(t => t.TokenId), r.Tokens.Select(t => t.TokenId));
        Assert.All(r.Tokens, t => { Assert.True(t.Logprob <= 0); Assert.Equal(2, t.Top!.Count); });
        var otherSeed = await Run(engine, "b", prompt, sample with { Seed = 99 });
        Assert.NotEqual(alone.Tokens.Select(t => t.TokenId), otherSeed.Tokens.Select(t => t.TokenId));

        // Greedy on this tiny model repeats itself; a strong frequency penalty forbids reusing a generated token.
        var plain = await Run(engine, null, prompt, Greedy with { MaxTokens = 16 });
        Assert.True(plain.Tokens.Select(t => t.TokenId).Distinct().Count() < 16, "greedy did not repeat; the penalty check proves nothing");
        var penalised = await Run(engine, null, prompt, Greedy with { MaxTokens = 16, FrequencyPenalty = 2, PresencePenalty = 2, RepetitionPenalty = 10 });
        Assert.Equal(16, penalised.Tokens.Select(t => t.TokenId).Distinct().Count());
    }

    [Fact]
    public async Task CancelledRequestLeavesTheBatchAndBadInputIsRefused()
    {
        var (engine, cache) = fx.Engine(new ServingEngineOptions { MaxQueue = 2 });
        using var _ = engine;
        using var __ = cache;
        using var cts = new CancellationTokenSource();
        var r = engine.Submit([1, 2, 3], Greedy with { MaxTokens = 200 }, await cache.AcquireAsync("a", default), cts.Token);
        await r.Tokens.ReadAsync();
        cts.Cancel();
        var result = await r.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("cancelled", result.FinishReason);
        Assert.True(result.Tokens.Count < 200);
        Assert.Equal(0, cache.Snapshot().Single(x => x.Key == "a@1").ActiveSequences);

        var bad = Assert.Throws<PeftUserException>(() => engine.Submit([1], Greedy with { TopP = 0 }, null));
        Assert.Contains("'top_p'", bad.Message);
        Assert.Equal(UserErrorKind.NotFound, (await Assert.ThrowsAsync<PeftUserException>(() => cache.AcquireAsync("nope", default))).Kind);
        Assert.Equal(UserErrorKind.NotFound, (await Assert.ThrowsAsync<PeftUserException>(() => cache.AcquireAsync("a@7", default))).Kind);
        Assert.Equal(UserErrorKind.BadRequest, (await Assert.ThrowsAsync<PeftUserException>(() => cache.AcquireAsync("../etc", default))).Kind);
    }
}
