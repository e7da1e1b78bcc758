using Peft.Training.Generation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Generation;

/// <summary>Sampling, eos handling, streaming and cancellation on the golden tiny llama (b2 = left-padded batch).</summary>
public class GenerationBehaviourTests
{
    // llama base greedy on b2 (golden): row 0 → 74 115 36 43 36 43 36 43, row 1 → 93 26 10 77 26 104 103 98.
    private static readonly long[] Row0Greedy = [74, 115, 36, 43, 36, 43, 36, 43];
    private static readonly long[] Row1Greedy = [93, 26, 10, 77, 26, 104, 103, 98];

    private static GenerationResult Run(GenerationOptions options, CancellationToken ct = default)
    {
        using var loaded = GenerationFixtures.Load("llama", "base");
        using var scope = torch.NewDisposeScope();
        var expected = GenerationFixtures.Expected("llama");
        var result = TextGenerator.Generate(loaded.Runner, expected["b2.input_ids"], expected["b2.attention_mask"], options, ct);
        result.Sequences.MoveToOuterDisposeScope();
        if (result.Scores is not null) foreach (var s in result.Scores) s.MoveToOuterDisposeScope();
        return result;
    }

    private static long[,] Sequences(GenerationResult r) => GenerationFixtures.ToArray2D(r.Sequences);

    [Fact]
    public void SeededSamplingIsReproducibleAndSeedDependent()
    {
        var options = new GenerationOptions { MaxNewTokens = 8, DoSample = true, Seed = 1234, PadTokenId = 0 };
        using var a = Run(options);
        using var b = Run(options);
        using var c = Run(options with { Seed = 99 });
        Assert.Equal(Sequences(a), Sequences(b));
        Assert.NotEqual(Sequences(a), Sequences(c));
    }

    [Fact]
    public void TopK1AndTinyTopPSamplingEqualGreedy()
    {
        using var greedy = Run(new GenerationOptions { MaxNewTokens = 8, PadTokenId = 0 });
        using var topK = Run(new GenerationOptions { MaxNewTokens = 8, PadTokenId = 0, DoSample = true, TopK = 1, Seed = 7, OutputScores = true });
        using var topP = Run(new GenerationOptions { MaxNewTokens = 8, PadTokenId = 0, DoSample = true, TopK = 0, TopP = 1e-6, Temperature = 0.7, Seed = 7 });
        Assert.Equal(Sequences(greedy), Sequences(topK));
        Assert.Equal(Sequences(greedy), Sequences(topP));
        Assert.Equal(new[] { Row0Greedy, Row1Greedy }, new[] { greedy.NewTokens(0), greedy.NewTokens(1) });
        // Processed scores with top_k = 1: one finite entry per row (the chosen token), -inf elsewhere.
        using var finite = topK.Scores![0].isfinite().sum(-1);
        Assert.Equal(new long[] { 1, 1 }, finite.data<long>().ToArray());
    }

    [Fact]
    public void EosFinishesARowAndPadsIt()
    {
        // 43 is row 0's fourth greedy token and never appears in row 1.
        using var r = Run(new GenerationOptions { MaxNewTokens = 8, EosTokenIds = [43], PadTokenId = 0 });
        Assert.Equal(13, r.Sequences.shape[1]);
        Assert.Equal(new long[] { 28, 49, 59, 118, 69, 74, 115, 36, 43, 0, 0, 0, 0 }, GenerationFixtures.Row(r.Sequences, 0));
        Assert.Equal(Row1Greedy, r.NewTokens(1));
        Assert.Equal(new[] { 4, 8 }, r.NewTokenCounts);
    }

    [Fact]
    public void GenerationStopsWhenEveryRowFinished()
    {
        // Row 0 ends at its 4th token (43), row 1 at its 2nd (26); the default pad is then the first eos id.
        using var r = Run(new GenerationOptions { MaxNewTokens = 8, EosTokenIds = [43, 26] });
        Assert.Equal(5 + 4, r.Sequences.shape[1]);
        Assert.Equal(new long[] { 74, 115, 36, 43 }, GenerationFixtures.Row(r.Sequences, 0)[5..]);
        Assert.Equal(new long[] { 93, 26, 43, 43 }, GenerationFixtures.Row(r.Sequences, 1)[5..]);
        Assert.Equal(new[] { 4, 2 }, r.NewTokenCounts);
    }

    [Fact]
    public void OnStepStreamsTokensAndCancellationStopsBetweenSteps()
    {
        using var cts = new CancellationTokenSource();
        var steps = new List<GenerationStep>();
        var options = new GenerationOptions
        {
            MaxNewTokens = 8,
            PadTokenId = 0,
            OnStep = s => { steps.Add(s); if (s.Step == 1) cts.Cancel(); },
        };
        Assert.ThrowsAny<OperationCanceledException>(() => Run(options, cts.Token));
        Assert.Equal(2, steps.Count);
        Assert.Equal(new long[] { Row0Greedy[0], Row1Greedy[0] }, steps[0].Tokens);
        Assert.Equal(new long[] { Row0Greedy[1], Row1Greedy[1] }, steps[1].Tokens);
        Assert.All(steps, s => Assert.Equal(new[] { false, false }, s.Finished));

        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => Run(new GenerationOptions(), cancelled.Token));
    }

    [Fact]
    public void DefaultsComeFromGenerationConfig()
    {
        // No options: eos 2 from generation_config.json (never produced here), 20 new tokens, greedy.
        using var r = Run(new GenerationOptions());
        Assert.Equal(5 + 20, r.Sequences.shape[1]);
        Assert.Equal(Row0Greedy, r.NewTokens(0)[..8]);
        // Explicit options override the config file.
        using var o = Run(new GenerationOptions { Defaults = new GenerationConfig { MaxNewTokens = 3 }, MaxNewTokens = 4 });
        Assert.Equal(5 + 4, o.Sequences.shape[1]);
        using var d = Run(new GenerationOptions { Defaults = new GenerationConfig { MaxNewTokens = 3, EosTokenIds = [36] } });
        Assert.Equal(new long[] { 74, 115, 36 }, d.NewTokens(0));
        Assert.Equal(new long[] { 93, 26, 10 }, d.NewTokens(1));
    }

    [Fact]
    public void InvalidOptionsAreRejected()
    {
        Assert.Contains("max_new_tokens", Assert.Throws<PeftUserException>(() => Run(new GenerationOptions { MaxNewTokens = 0 })).Message);
        Assert.Throws<PeftUserException>(() => Run(new GenerationOptions { AdapterNames = ["__base__"] }));
        // Row adapter names on a plain model are an API misuse (hosts check the names against loaded adapters first).
        Assert.Throws<ArgumentException>(() => Run(new GenerationOptions { AdapterNames = ["__base__", "__base__"] }));
        Assert.Contains("temperature", Assert.Throws<PeftUserException>(() => Run(new GenerationOptions { DoSample = true, Temperature = 0 })).Message);
        Assert.Contains("top_p", Assert.Throws<PeftUserException>(() => Run(new GenerationOptions { DoSample = true, TopP = 1.5 })).Message);
        Assert.Throws<PeftUserException>(() => Run(new GenerationOptions { NumBeams = 2, DoSample = true }));
        // Streaming with beams is a programming error (an API misuse), not a user error.
        Assert.Throws<NotSupportedException>(() => Run(new GenerationOptions { NumBeams = 2, OnStep = _ => { } }));
    }
}
