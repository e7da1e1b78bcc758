using Peft.Tests.Support;
using System.Text.Json;
using Peft.Training.Tokenization;

namespace Peft.Tests.Cli;

/// <summary>`peft tokenizer train`.</summary>
public class BpeTrainerCliTests
{
    private static string WriteData(TempDir tmp, string name = "data.jsonl")
    {
        string[] words = ["whale", "ship", "captain", "harpoon", "ocean", "sailor", "Ahab", "Ishmael", "the", "and"];
        var lines = Enumerable.Range(0, 60).Select(i => JsonSerializer.Serialize(new
        {
            text = string.Join(" ", Enumerable.Range(0, 12).Select(j => words[(i * 7 + j * 3) % words.Length])) + ".",
            split = i % 10 == 0 ? "validation" : "train",
        }));
        File.WriteAllLines(tmp[name], lines);
        return tmp[name];
    }

    [Fact]
    public void Train_WritesLoadableTokenizer_AndReportsValidation()
    {
        using var tmp = new TempDir();
        var r = CliHarness.Run("tokenizer", "train", "--data", WriteData(tmp), "--vocab-size", "300", "--out", tmp["tok"],
            "--model-max-length", "256");
        r.AssertOk();
        Assert.Contains("read 54 texts", r.Out);
        Assert.Contains("trained 300 tokens (2 special, 256 bytes, 42 merges)", r.Out);
        Assert.Matches(@"validation: 6 texts, 72 words, \d+ tokens, [0-9.]+ tokens/word", r.Out);
        using var tok = (HfTokenizer)AutoTokenizer.FromFolder(tmp["tok"]);
        Assert.Equal(300, tok.VocabSize);
        Assert.Equal(256, tok.ModelMaxLength);
        Assert.Equal("Ahab and the whale.", tok.Decode(tok.Encode("Ahab and the whale.")));
    }

    [Fact]
    public void ExistingTokenizer_NeedsForce_OtherFilesAreKept()
    {
        using var tmp = new TempDir();
        string data = WriteData(tmp);
        Directory.CreateDirectory(tmp["tok"]);
        File.WriteAllText(tmp["tok/model.safetensors"], "weights");
        CliHarness.Run("tokenizer", "train", "--data", data, "--vocab-size", "280", "--out", tmp["tok"]).AssertOk();
        CliHarness.Run("tokenizer", "train", "--data", data, "--vocab-size", "280", "--out", tmp["tok"])
            .AssertBadInput("already has tokenizer.json", "--force");
        CliHarness.Run("tokenizer", "train", "--data", data, "--vocab-size", "280", "--out", tmp["tok"], "--force").AssertOk();
        Assert.Equal("weights", File.ReadAllText(tmp["tok/model.safetensors"]));
    }

    [Theory]
    [InlineData("vocab")]
    [InlineData("missing")]
    [InlineData("malformed")]
    [InlineData("nosplit")]
    public void BadInput_IsExitCode2(string kind)
    {
        using var tmp = new TempDir();
        string data = WriteData(tmp);
        if (kind == "malformed") File.AppendAllText(data, "{\"text\": oops}\n");
        var (args, fragment) = kind switch
        {
            "vocab" => (new[] { "--data", data, "--vocab-size", "100" }, "at least 258"),
            "missing" => (["--data", tmp["nope.jsonl"]], "does not exist"),
            "malformed" => (["--data", data], "invalid JSON"),
            _ => (["--data", data, "--split", "test"], "no records of split 'test'"),
        };
        CliHarness.Run(["tokenizer", "train", "--out", tmp["tok"], .. args]).AssertBadInput(fragment);
    }
}
