using Peft.Tests.Support;
using Peft.Training.Generation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Generation;

/// <summary>
/// Greedy generate() against transformers 4.40 (llama_generate / gpt2_generate; base, LoRA and — llama — prefix tuning,
/// whose prefix goes into the empty cache and whose positions ignore padding): 8 new tokens, KV cache, left-padded
/// b2 batch. The stored top1-top2 margins are ≥ 0.008, far above the 1e-4 score tolerance, so ids must match exactly.
/// </summary>
public class GoldenGenerationTests
{
    public static TheoryData<string, string, string> Cases()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var family in new[] { "llama", "gpt2" })
            foreach (var variant in family == "llama" ? new[] { "base", "lora", "prefix_tuning" } : ["base", "lora"])
                foreach (var batch in new[] { "b1", "b2" })
                    data.Add(family, variant, batch);
        return data;
    }

    private static GenerationOptions Greedy => new() { MaxNewTokens = 8, PadTokenId = 0, OutputScores = true };

    [Theory, MemberData(nameof(Cases))]
    public void GreedyMatchesTransformers(string family, string variant, string batch)
    {
        using var scope = torch.NewDisposeScope();
        using var loaded = GenerationFixtures.Load(family, variant);
        var expected = GenerationFixtures.Expected(family);
        using var result = TextGenerator.Generate(loaded.Runner, expected[$"{batch}.input_ids"], expected[$"{batch}.attention_mask"], Greedy);

        Assert.Equal(GenerationFixtures.ToArray2D(expected[$"{variant}.{batch}.sequences"]), GenerationFixtures.ToArray2D(result.Sequences));
        Assert.Equal(8, result.Scores!.Count);
        GoldenData.AssertClose(expected[$"{variant}.{batch}.scores"], result.StackedScores(), 1e-4, $"{family} {variant}.{batch} scores");
        Assert.All(result.NewTokenCounts, c => Assert.Equal(8, c));
        Assert.Equal(5, result.PromptLength);
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("gpt2")]
    public void MixedBatchAdaptersMatchPerVariantRows(string family)
    {
        using var scope = torch.NewDisposeScope();
        using var loaded = GenerationFixtures.Load(family, "lora");
        var expected = GenerationFixtures.Expected(family);
        var options = Greedy with { AdapterNames = ["default", "__base__"] };
        using var result = TextGenerator.Generate(loaded.Runner, expected["b2.input_ids"], expected["b2.attention_mask"], options);

        // Rows are independent, so row 0 = the LoRA run's row 0 and row 1 = the base run's row 1.
        Assert.Equal(GenerationFixtures.Row(expected["lora.b2.sequences"], 0), GenerationFixtures.Row(result.Sequences, 0));
        Assert.Equal(GenerationFixtures.Row(expected["base.b2.sequences"], 1), GenerationFixtures.Row(result.Sequences, 1));
        var scores = result.StackedScores();
        GoldenData.AssertClose(expected["lora.b2.scores"][0], scores[0], 1e-4, "row 0 (default adapter) scores");
        GoldenData.AssertClose(expected["base.b2.scores"][1], scores[1], 1e-4, "row 1 (__base__) scores");
    }

    [Fact]
    public void MissingMaskIsDerivedFromThePadId()
    {
        using var scope = torch.NewDisposeScope();
        using var loaded = GenerationFixtures.Load("gpt2", "base");
        var expected = GenerationFixtures.Expected("gpt2");
        // Pad id 0 occurs in the left-padded prompt and is not an eos id, so the mask is ids != 0 (as transformers).
        using var result = TextGenerator.Generate(loaded.Runner, expected["b2.input_ids"], null, Greedy);
        Assert.Equal(GenerationFixtures.ToArray2D(expected["base.b2.sequences"]), GenerationFixtures.ToArray2D(result.Sequences));
    }

    [Fact]
    public void PeftModelOverloadUsesActiveAdapter()
    {
        using var scope = torch.NewDisposeScope();
        using var loaded = GenerationFixtures.Load("llama", "lora");
        var peft = ((PeftModelRunner)loaded.Runner).Peft;
        var expected = GenerationFixtures.Expected("llama");
        using var result = TextGenerator.Generate(peft, expected["b1.input_ids"], options: new GenerationOptions { MaxNewTokens = 8 });
        Assert.Equal(GenerationFixtures.ToArray2D(expected["lora.b1.sequences"]), GenerationFixtures.ToArray2D(result.Sequences));
        Assert.Null(result.Scores);
    }
}
