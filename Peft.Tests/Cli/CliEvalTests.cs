using System.Text.Json.Nodes;
using Peft.Tests.Demo;
using Peft.Tests.Support;

namespace Peft.Tests.Cli;

/// <summary><c>peft eval</c>: perplexity of a model (and adapter) on a data file.</summary>
public class CliEvalTests
{
    [Fact]
    public void ReportsLossAndPerplexityAndAnAdapterChangesThem()
    {
        using var tmp = new TempDir();
        string model = DemoModelTests.RepoPath("models/peft-demo");
        File.WriteAllLines(tmp["val.jsonl"], File.ReadLines(DemoModelTests.RepoPath("data/austen.jsonl")).Where(l => l.Contains("\"split\":\"validation\"")).Take(30));
        var r = CliHarness.Run("eval", model, "--data", tmp["val.jsonl"], "--block-size", "128");
        r.AssertOk();
        var o = JsonNode.Parse(r.Out.Trim())!;
        double loss = o["eval_loss"]!.GetValue<double>(), ppl = o["eval_perplexity"]!.GetValue<double>();
        Assert.Equal(Math.Exp(loss), ppl, 6);
        // The demo model was pretrained on Austen: held-out Austen scores a loss near 4.5 (perplexity ~90), far below
        // the uniform guess over 8,192 tokens (ln 8192 = 9.01); a broken model or loader lands near or above that.
        Assert.InRange(loss, 3.5, 5.0);
        Assert.True(o["tokens"]!.GetValue<long>() > 1000);

        // A LoRA adapter with random (non-zero) weights must change the score.
        CliHarness.Run("train", "--model", model, "--data", tmp["val.jsonl"], "--format", "text", "--block-size", "128",
            "--max-steps", "2", "--lr", "0.05", "--method", "lora", "--out", tmp["lora"]).AssertOk();
        var adapted = JsonNode.Parse(CliHarness.Run("eval", model, "--adapter", tmp["lora"], "--data", tmp["val.jsonl"], "--block-size", "128").Out.Trim())!;
        Assert.NotEqual(loss, adapted["eval_loss"]!.GetValue<double>());
    }

    [Fact]
    public void BadInputIsExitCodeTwo()
    {
        using var tmp = new TempDir();
        CliHarness.Run("eval", DemoModelTests.RepoPath("models/peft-demo"), "--data", tmp["missing.jsonl"]).AssertBadInput("missing.jsonl");
    }

    [Fact]
    public void AMalformedDataFileIsExitCodeTwoNamingTheFileAndLine()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["bad.jsonl"], "{\"text\": \"It is a truth universally acknowledged.\"}\n{\"text\": \"unterminated}\n");
        var r = CliHarness.Run("eval", DemoModelTests.RepoPath("models/peft-demo"), "--data", tmp["bad.jsonl"]);
        r.AssertBadInput($"{tmp["bad.jsonl"]}:2:");
        Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
