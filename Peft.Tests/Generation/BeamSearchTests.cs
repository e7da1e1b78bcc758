using Peft.Training.Generation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Generation;

/// <summary>Beam search on the golden tiny models (no transformers reference data for beams, so properties are checked).</summary>
public class BeamSearchTests
{
    public static TheoryData<string, string> Models => new() { { "llama", "base" }, { "llama", "lora" }, { "gpt2", "base" }, { "gpt2", "lora" } };

    [Theory, MemberData(nameof(Models))]
    public void OneBeamEqualsGreedy(string family, string variant)
    {
        using var scope = torch.NewDisposeScope();
        using var loaded = GenerationFixtures.Load(family, variant);
        var expected = GenerationFixtures.Expected(family);
        var (ids, mask) = (expected["b2.input_ids"], expected["b2.attention_mask"]);
        var options = new GenerationOptions { MaxNewTokens = 8, PadTokenId = 0, NumBeams = 1 };
        // Run the beam algorithm itself with one beam (Generate would dispatch num_beams = 1 to greedy).
        var settings = GenerationSettings.Resolve(options, new GenerationConfig(), ids.shape[0]);
        using var noGrad = torch.no_grad();
        using var beam = BeamSearch.Run(loaded.Runner, ids, mask, settings, default);
        Assert.Equal(GenerationFixtures.ToArray2D(expected[$"{variant}.b2.sequences"]), GenerationFixtures.ToArray2D(beam.Sequences));
    }

    [Theory, MemberData(nameof(Models))]
    public void BeamsScoreAtLeastAsWellAsGreedy(string family, string variant)
    {
        using var scope = torch.NewDisposeScope();
        using var loaded = GenerationFixtures.Load(family, variant);
        var expected = GenerationFixtures.Expected(family);
        var (ids, mask) = (expected["b2.input_ids"], expected["b2.attention_mask"]);
        // No eos: every hypothesis has 8 tokens, so the beam objective is the plain log-prob sum.
        var options = new GenerationOptions { MaxNewTokens = 8, PadTokenId = 0, EosTokenIds = [], NumBeams = 4, OutputScores = true };
        using var beam = TextGenerator.Generate(loaded.Runner, ids, mask, options);
        using var greedy = TextGenerator.Generate(loaded.Runner, ids, mask, options with { NumBeams = 1 });
        Assert.Equal(new long[] { 2, 13 }, beam.Sequences.shape);
        Assert.Equal(new[] { 8, 8 }, beam.NewTokenCounts);
        Assert.Equal(8, beam.Scores!.Count);
        Assert.Equal(new long[] { 2 * 4, 128 }, beam.Scores[0].shape);

        var beamLp = GenerationFixtures.SequenceLogProbs(loaded.Runner, beam.Sequences, mask);
        var greedyLp = GenerationFixtures.SequenceLogProbs(loaded.Runner, greedy.Sequences, mask);
        for (int r = 0; r < 2; r++)
        {
            Assert.True(beamLp[r] >= greedyLp[r] - 1e-4, $"row {r}: beam log-prob {beamLp[r]:F5} < greedy {greedyLp[r]:F5}");
            // sequences_scores = sum of log-probs / generated length (length_penalty 1).
            Assert.Equal(beamLp[r] / 8, beam.SequenceScores![r], 3);
        }
    }

    [Fact]
    public void EosHypothesesEndWithEosThenPadding()
    {
        using var scope = torch.NewDisposeScope();
        using var loaded = GenerationFixtures.Load("llama", "base");
        var expected = GenerationFixtures.Expected("llama");
        // 36 and 26 are frequent greedy tokens of the two rows, so some beams close early.
        var options = new GenerationOptions { MaxNewTokens = 8, PadTokenId = 0, EosTokenIds = [36, 26], NumBeams = 3 };
        using var r = TextGenerator.Generate(loaded.Runner, expected["b2.input_ids"], expected["b2.attention_mask"], options);
        Assert.Equal(2, r.SequenceScores!.Count);
        for (int row = 0; row < 2; row++)
        {
            var generated = GenerationFixtures.Row(r.Sequences, row)[5..];
            var mine = r.NewTokens(row);
            Assert.Equal(mine, generated[..mine.Length]);
            Assert.All(generated[mine.Length..], t => Assert.Equal(0, t));
            int eosAt = Array.FindIndex(mine, t => t is 36 or 26);
            // An eos, if any, is the last generated token.
            Assert.True(eosAt < 0 || eosAt == mine.Length - 1, $"row {row}: eos inside [{string.Join(", ", mine)}]");
        }
    }
}
