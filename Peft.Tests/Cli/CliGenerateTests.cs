using System.Globalization;
using Peft.Tests.Generation;
using Peft.Tests.Support;
using Peft.Training.Generation;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Cli;

/// <summary>
/// <c>peft generate</c>: token files against transformers' sequences (Golden/llama_generate, gpt2_generate; greedy,
/// 8 new tokens, pad id 0), prompts through a tiny tokenizer, and the CLI's own decoding options compared with
/// <see cref="TextGenerator"/>.
/// </summary>
public class CliGenerateTests
{
    private static readonly string LlamaBase = CliHarness.Golden("llama_base");

    /// <summary>Writes the golden <c>{batch}.input_ids/attention_mask</c> as a generate input file.</summary>
    private static string InputFile(TempDir tmp, string family, string batch)
    {
        using var scope = torch.NewDisposeScope();
        var expected = GenerationFixtures.Expected(family);
        string path = tmp[$"{family}.{batch}.in.safetensors"];
        Safetensors.Save(path, [new("input_ids", expected[$"{batch}.input_ids"]), new("attention_mask", expected[$"{batch}.attention_mask"])]);
        return path;
    }

    private static Dictionary<string, Tensor> RunBatch(TempDir tmp, string family, string batch, params string[] extra)
    {
        string output = tmp[$"out-{Guid.NewGuid():N}.safetensors"];
        var r = CliHarness.Run(["generate", CliHarness.Golden($"{family}_base"), "--input", InputFile(tmp, family, batch), "--out", output, .. extra]);
        r.AssertOk();
        Assert.Contains($"-> {output}", r.Out);
        return Safetensors.Load(output);
    }

    public static TheoryData<string, string, string> GoldenCases() => GoldenGenerationTests.Cases();

    [Theory, MemberData(nameof(GoldenCases))]
    public void SequencesMatchTransformers(string family, string variant, string batch)
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        string[] adapter = variant == "base" ? [] : ["--adapter", CliHarness.Golden($"{family}_{variant}")];
        var written = RunBatch(tmp, family, batch, [.. adapter, "--max-new-tokens", "8", "--pad-token-id", "0"]);
        Assert.Equal(["sequences"], written.Keys);
        Assert.Equal(ScalarType.Int64, written["sequences"].dtype);
        var expected = GenerationFixtures.Expected(family)[$"{variant}.{batch}.sequences"];
        Assert.Equal(GenerationFixtures.ToArray2D(expected), GenerationFixtures.ToArray2D(written["sequences"]));
    }

    [Fact]
    public void ScoresAreWrittenOnRequest()
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        var written = RunBatch(tmp, "llama", "b2", "--adapter", CliHarness.Golden("llama_lora"), "--max-new-tokens", "8", "--output-scores");
        Assert.Equal(ScalarType.Float32, written["scores"].dtype);
        Assert.Equal([2L, 8, 128], written["scores"].shape);
        GoldenData.AssertClose(GenerationFixtures.Expected("llama")["lora.b2.scores"], written["scores"], 1e-4, "lora.b2.scores");
    }

    [Fact]
    public void MixedBatchAdapterNames()
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        var written = RunBatch(tmp, "llama", "b2", "--adapter", "x=" + CliHarness.Golden("llama_lora"), "--adapter-names", "x,__base__", "--max-new-tokens", "8");
        var expected = GenerationFixtures.Expected("llama");
        Assert.Equal(GenerationFixtures.Row(expected["lora.b2.sequences"], 0), GenerationFixtures.Row(written["sequences"], 0));
        Assert.Equal(GenerationFixtures.Row(expected["base.b2.sequences"], 1), GenerationFixtures.Row(written["sequences"], 1));
    }

    [Theory]
    [InlineData("--temperature 0.7 --top-k 10 --seed 3")]
    [InlineData("--do-sample --top-p 0.9 --seed 5")]
    [InlineData("--num-beams 3")]
    public void DecodingOptionsMatchTextGenerator(string commandLine)
    {
        var cliOptions = commandLine.Split(' ');
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        var written = RunBatch(tmp, "gpt2", "b2", [.. cliOptions, "--max-new-tokens", "6"]);
        var options = new GenerationOptions { MaxNewTokens = 6 };
        for (int i = 0; i < cliOptions.Length; i++)
        {
            string next = i + 1 < cliOptions.Length ? cliOptions[i + 1] : "";
            options = cliOptions[i] switch
            {
                "--temperature" => options with { DoSample = true, Temperature = double.Parse(next, CultureInfo.InvariantCulture) },
                "--top-k" => options with { DoSample = true, TopK = int.Parse(next, CultureInfo.InvariantCulture) },
                "--top-p" => options with { DoSample = true, TopP = double.Parse(next, CultureInfo.InvariantCulture) },
                "--do-sample" => options with { DoSample = true },
                "--seed" => options with { Seed = long.Parse(next, CultureInfo.InvariantCulture) },
                "--num-beams" => options with { NumBeams = int.Parse(next, CultureInfo.InvariantCulture) },
                _ => options,
            };
        }
        using var loaded = GenerationFixtures.Load("gpt2", "base");
        var expected = GenerationFixtures.Expected("gpt2");
        using var direct = TextGenerator.Generate(loaded.Runner, expected["b2.input_ids"], expected["b2.attention_mask"], options);
        Assert.Equal(GenerationFixtures.ToArray2D(direct.Sequences), GenerationFixtures.ToArray2D(written["sequences"]));
    }

    /// <summary>
    /// llama_base plus a WordLevel tokenizer.json over exactly the model's 128 ids: &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;
    /// (special) and "w3".."w127", split on whitespace; no decoder, so decoding joins tokens with spaces.
    /// </summary>
    private static string ModelWithTokenizer(TempDir tmp)
    {
        string dir = CliHarness.CopyDir(LlamaBase, tmp["model"]);
        WordLevelTokenizer.Write(dir, 128, ["<unk>", "<s>", "</s>"]);
        return dir;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void PromptStreamsTheGreedyContinuation(int beams)
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        string model = ModelWithTokenizer(tmp);
        const string prompt = "w28 w49 w59 w118 w69"; // = the golden b1 prompt ids
        var r = CliHarness.Run("generate", model, "--prompt", prompt, "--max-new-tokens", "8", "--num-beams", beams.ToString(CultureInfo.InvariantCulture));
        r.AssertOk();
        Assert.StartsWith(prompt, r.Out);
        Assert.EndsWith("\n", r.Out);

        using var tokenizer = AutoTokenizer.FromFolder(model);
        var ids = tokenizer.Encode(prompt);
        Assert.Equal([28, 49, 59, 118, 69], ids);
        using var m = AutoModel.FromPretrained(model);
        m.eval();
        using var result = TextGenerator.Generate(m, torch.tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Count]),
            options: new GenerationOptions { MaxNewTokens = 8, NumBeams = beams });
        var newIds = result.NewTokens(0).Select(i => (int)i).ToArray();
        string continuation = tokenizer.Decode(ids.Concat(newIds), skipSpecialTokens: true)[prompt.Length..];
        Assert.Equal(prompt + continuation + Environment.NewLine, r.Out);
        if (beams == 1) Assert.Equal(" w74 w115 w36 w43 w36 w43 w36 w43", continuation); // golden base.b1
    }

    [Fact]
    public void PromptNeedsTokenizerJson() =>
        CliHarness.Run("generate", LlamaBase, "--prompt", "hello").AssertBadInput("--prompt", "tokenizer.json", LlamaBase);

    [Fact]
    public void PromptXorInput()
    {
        using var tmp = new TempDir();
        string input = InputFile(tmp, "llama", "b1");
        CliHarness.Run("generate", LlamaBase, "--prompt", "w3", "--input", input, "--out", tmp["o.safetensors"]).AssertBadInput("--prompt", "--input", "not both");
        CliHarness.Run("generate", LlamaBase).AssertBadInput("--prompt", "--input");
        CliHarness.Run("generate", LlamaBase, "--input", input).AssertBadInput("--out");
        CliHarness.Run("generate", LlamaBase, "--prompt", "w3", "--output-scores").AssertBadInput("--output-scores");
        Assert.False(File.Exists(tmp["o.safetensors"]));
    }

    [Theory]
    [InlineData("--temperature", "0")]
    [InlineData("--temperature", "-1")]
    [InlineData("--temperature", "abc")]
    [InlineData("--top-p", "-0.1")]
    [InlineData("--top-p", "1.5")]
    [InlineData("--top-k", "-1")]
    [InlineData("--max-new-tokens", "0")]
    [InlineData("--num-beams", "0")]
    [InlineData("--pad-token-id", "-1")]
    public void BadOptionValues(string option, string value) =>
        CliHarness.Run("generate", LlamaBase, "--prompt", "w3", option, value).AssertBadInput(option);

    [Fact]
    public void ConflictingDecodingOptions()
    {
        CliHarness.Run("generate", LlamaBase, "--prompt", "w3", "--top-k", "5", "--do-sample", "false").AssertBadInput("--top-k", "--do-sample false");
        CliHarness.Run("generate", LlamaBase, "--prompt", "w3", "--num-beams", "2", "--temperature", "0.5").AssertBadInput("--num-beams", "--temperature");
        using var tmp = new TempDir();
        CliHarness.Run("generate", ModelWithTokenizer(tmp), "--prompt", "w3", "--adapter-names", "__base__,__base__", "--adapter", CliHarness.Golden("llama_lora"))
            .AssertBadInput("--adapter-names", "single row");
    }

    [Fact]
    public void InfoSummarizesModelsAndAdapters()
    {
        var model = CliHarness.Run("info", LlamaBase);
        model.AssertOk();
        foreach (var line in new[] { "model_type:", "llama", "layers:", "hidden size:", "64", "params:", "108,864", "vocab size:" })
            Assert.Contains(line, model.Out);

        var adapter = CliHarness.Run("info", CliHarness.Golden("llama_lora"));
        adapter.AssertOk();
        foreach (var line in new[] { "peft_type:", "LORA", "task_type:", "CAUSAL_LM", "base model:", "llama_base", "r:", "4", "lora_alpha:", "8", "q_proj", "v_proj", "tensors:", "8 (1,792 values" })
            Assert.Contains(line, adapter.Out);

        using var tmp = new TempDir();
        CliHarness.Run("info", tmp.Path).AssertBadInput(tmp.Path, "config.json");
    }
}
