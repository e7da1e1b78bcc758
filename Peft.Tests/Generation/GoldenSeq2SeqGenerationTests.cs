using Peft.Tests.Support;
using Peft.Training.Generation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Generation;

/// <summary>
/// Greedy seq2seq generate() against transformers 4.40 (Golden/t5_generate, mt5_generate; base and LoRA): a
/// right-padded encoder batch of 3, decoder from decoder_start_token_id 0, 5 new tokens, raw logits as scores. The
/// smallest stored top1-top2 margin is 0.083, far above the score tolerance, so the ids must match exactly.
/// </summary>
public class GoldenSeq2SeqGenerationTests
{
    public static TheoryData<string, string> Cases => new() { { "t5", "base" }, { "t5", "lora" }, { "mt5", "base" }, { "mt5", "lora" } };

    /// <summary>Scores abs 1e-4, relative 1e-5 of the largest |logit| where that is looser (mT5 logits reach ~25).</summary>
    internal static void AssertScoresClose(Tensor expected, Tensor actual, string what)
    {
        using var peak = expected.abs().max();
        GoldenData.AssertClose(expected, actual, Math.Max(1e-4, 1e-5 * peak.item<float>()), what);
    }

    [Theory, MemberData(nameof(Cases))]
    public void GreedyMatchesTransformers(string family, string variant)
    {
        using var scope = torch.NewDisposeScope();
        using var loaded = GenerationFixtures.Load(family, variant);
        var expected = GoldenData.Expected($"{family}_generate");
        using var result = TextGenerator.Generate(loaded.Runner, expected["input_ids"], expected["attention_mask"],
            new GenerationOptions { MaxNewTokens = 5, PadTokenId = 0, OutputScores = true });
        Assert.Equal(GenerationFixtures.ToArray2D(expected[$"sequences_{variant}"]), GenerationFixtures.ToArray2D(result.Sequences));
        Assert.Equal(1, result.PromptLength);
        AssertScoresClose(expected[$"scores_{variant}"], result.StackedScores(), $"{family} {variant} scores");
    }
}
