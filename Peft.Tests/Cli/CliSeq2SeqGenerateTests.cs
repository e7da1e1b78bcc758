using System.Globalization;
using Peft.Tests.Generation;
using Peft.Tests.Support;
using Peft.Training.Generation;
using Peft.Training.IO;
using Peft.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Cli;

/// <summary>
/// <c>peft generate</c> on encoder-decoder folders (tiny T5 / mT5): token files against transformers' sequences
/// (Golden/t5_generate, mt5_generate: right-padded encoder batch, 5 greedy tokens), the same batch padded on the left,
/// mixed-batch adapter names, sampling and beams against <see cref="TextGenerator"/>, and a text prompt.
/// </summary>
public class CliSeq2SeqGenerateTests
{
    public static TheoryData<string, string> Cases => GoldenSeq2SeqGenerationTests.Cases;

    private static Dictionary<string, Tensor> Expected(string family) => GoldenData.Expected($"{family}_generate");

    private static string InputFile(TempDir tmp, Tensor ids, Tensor mask)
    {
        string path = tmp[$"in-{Guid.NewGuid():N}.safetensors"];
        Safetensors.Save(path, [new("input_ids", ids), new("attention_mask", mask)]);
        return path;
    }

    private static Dictionary<string, Tensor> Run(TempDir tmp, string family, string input, params string[] extra)
    {
        string output = tmp[$"out-{Guid.NewGuid():N}.safetensors"];
        var r = CliHarness.Run(["generate", CliHarness.Golden($"{family}_base"), "--input", input, "--out", output, .. extra]);
        r.AssertOk();
        return Safetensors.Load(output);
    }

    private static string[] Adapter(string family, string variant) => variant == "base" ? [] : ["--adapter", CliHarness.Golden($"{family}_{variant}")];

    /// <summary>The same rows padded on the left instead of the right (real tokens moved to the end).</summary>
    private static (Tensor Ids, Tensor Mask) LeftPadded(Tensor ids, Tensor mask)
    {
        var idRows = GenerationFixtures.ToArray2D(ids);
        var maskRows = GenerationFixtures.ToArray2D(mask);
        int b = idRows.GetLength(0), len = idRows.GetLength(1);
        var newIds = new long[b * len];
        var newMask = new long[b * len];
        for (int r = 0; r < b; r++)
        {
            int real = Enumerable.Range(0, len).Count(j => maskRows[r, j] != 0);
            for (int j = 0; j < real; j++)
            {
                newIds[r * len + len - real + j] = idRows[r, j];
                newMask[r * len + len - real + j] = 1;
            }
        }
        return (torch.tensor(newIds, [b, len]), torch.tensor(newMask, [b, len]));
    }

    [Theory, MemberData(nameof(Cases))]
    public void SequencesAndScoresMatchTransformers(string family, string variant)
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        var expected = Expected(family);
        var written = Run(tmp, family, InputFile(tmp, expected["input_ids"], expected["attention_mask"]),
            [.. Adapter(family, variant), "--max-new-tokens", "5", "--output-scores"]);
        Assert.Equal(GenerationFixtures.ToArray2D(expected[$"sequences_{variant}"]), GenerationFixtures.ToArray2D(written["sequences"]));
        GoldenSeq2SeqGenerationTests.AssertScoresClose(expected[$"scores_{variant}"], written["scores"], $"{family} {variant} scores");
    }

    [Theory, MemberData(nameof(Cases))]
    public void LeftPaddedEncoderInputGivesTheSameSequences(string family, string variant)
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        var expected = Expected(family);
        var (ids, mask) = LeftPadded(expected["input_ids"], expected["attention_mask"]);
        Assert.NotEqual(GenerationFixtures.ToArray2D(expected["input_ids"]), GenerationFixtures.ToArray2D(ids));
        var written = Run(tmp, family, InputFile(tmp, ids, mask), [.. Adapter(family, variant), "--max-new-tokens", "5"]);
        Assert.Equal(GenerationFixtures.ToArray2D(expected[$"sequences_{variant}"]), GenerationFixtures.ToArray2D(written["sequences"]));
    }

    [Theory]
    [InlineData("t5")]
    [InlineData("mt5")]
    public void MixedBatchAdapterNamesPickEachRowsVariant(string family)
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        var expected = Expected(family);
        var written = Run(tmp, family, InputFile(tmp, expected["input_ids"], expected["attention_mask"]),
            "--adapter", "x=" + CliHarness.Golden($"{family}_lora"), "--adapter-names", "x,__base__,x", "--max-new-tokens", "5");
        Assert.Equal(GenerationFixtures.Row(expected["sequences_lora"], 0), GenerationFixtures.Row(written["sequences"], 0));
        Assert.Equal(GenerationFixtures.Row(expected["sequences_base"], 1), GenerationFixtures.Row(written["sequences"], 1));
        Assert.Equal(GenerationFixtures.Row(expected["sequences_lora"], 2), GenerationFixtures.Row(written["sequences"], 2));
    }

    [Theory]
    [InlineData("t5", "--temperature 0.7 --top-k 10 --seed 3")]
    [InlineData("mt5", "--do-sample --top-p 0.9 --seed 5")]
    [InlineData("t5", "--num-beams 3")]
    [InlineData("mt5", "--num-beams 3")]
    public void SamplingAndBeamsMatchTextGenerator(string family, string commandLine)
    {
        var cliOptions = commandLine.Split(' ');
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        var expected = Expected(family);
        var written = Run(tmp, family, InputFile(tmp, expected["input_ids"], expected["attention_mask"]),
            [.. cliOptions, "--adapter", CliHarness.Golden($"{family}_lora"), "--max-new-tokens", "6"]);
        Assert.Equal([3L, 7], written["sequences"].shape);

        string Value(string flag) => cliOptions[Array.IndexOf(cliOptions, flag) + 1];
        var options = new GenerationOptions { MaxNewTokens = 6 };
        if (cliOptions.Contains("--num-beams")) options = options with { NumBeams = int.Parse(Value("--num-beams"), CultureInfo.InvariantCulture) };
        else options = options with
        {
            DoSample = true, Seed = long.Parse(Value("--seed"), CultureInfo.InvariantCulture),
            Temperature = cliOptions.Contains("--temperature") ? double.Parse(Value("--temperature"), CultureInfo.InvariantCulture) : null,
            TopK = cliOptions.Contains("--top-k") ? int.Parse(Value("--top-k"), CultureInfo.InvariantCulture) : null,
            TopP = cliOptions.Contains("--top-p") ? double.Parse(Value("--top-p"), CultureInfo.InvariantCulture) : null,
        };
        using var loaded = GenerationFixtures.Load(family, "lora");
        using var direct = TextGenerator.Generate(loaded.Runner, expected["input_ids"], expected["attention_mask"], options);
        Assert.Equal(GenerationFixtures.ToArray2D(direct.Sequences), GenerationFixtures.ToArray2D(written["sequences"]));
        if (options.NumBeams is > 1)
        {
            // Beam search keeps the most likely sequence it finds: never less likely than the greedy one.
            var greedy = Run(tmp, family, InputFile(tmp, expected["input_ids"], expected["attention_mask"]),
                "--adapter", CliHarness.Golden($"{family}_lora"), "--max-new-tokens", "6");
            var beam = T5GenerationTests.LogProbs(loaded.Runner, expected["input_ids"], expected["attention_mask"], written["sequences"]);
            var plain = T5GenerationTests.LogProbs(loaded.Runner, expected["input_ids"], expected["attention_mask"], greedy["sequences"]);
            for (int r = 0; r < 3; r++) Assert.True(beam[r] >= plain[r] - 1e-4, $"row {r}: beam {beam[r]} < greedy {plain[r]}");
        }
    }

    /// <summary>
    /// t5_base plus a WordLevel tokenizer.json over its 128 ids (&lt;pad&gt; 0, &lt;/s&gt; 1, &lt;unk&gt; 2 special,
    /// "w3".."w127") that appends &lt;/s&gt; like T5's tokenizer; no decoder, so decoding joins tokens with spaces.
    /// </summary>
    private static string T5WithTokenizer(TempDir tmp)
    {
        string dir = CliHarness.CopyDir(CliHarness.Golden("t5_base"), tmp["t5"]);
        WordLevelTokenizer.Write(dir, 128, ["<pad>", "</s>", "<unk>"], appendEos: "</s>");
        return dir;
    }

    [Theory]
    [InlineData("base", "w121 w121 w121 w121 w121")]
    [InlineData("lora", "w5 w5 w5 w5 w5")]
    public void PromptPrintsTheDecodersText(string variant, string text)
    {
        using var tmp = new TempDir();
        string model = T5WithTokenizer(tmp);
        // Encodes to row 0 of the golden batch, [80, 125, 94, 126, 48, 4, 1] (eos appended like T5's tokenizer).
        var r = CliHarness.Run(["generate", model, "--prompt", "w80 w125 w94 w126 w48 w4", "--max-new-tokens", "5", .. Adapter("t5", variant)]);
        r.AssertOk();
        Assert.Equal(text + Environment.NewLine, r.Out);
    }

    [Fact]
    public void EncoderOnlyModelsAreRefusedWithOneLine() =>
        CliHarness.Run("generate", CliHarness.Golden("bert_base"), "--input", CliHarness.ExpectedFile("bert_base"), "--out", "/tmp/unused.safetensors")
            .AssertBadInput("generate needs a causal LM or a seq2seq LM", "bert");
}
