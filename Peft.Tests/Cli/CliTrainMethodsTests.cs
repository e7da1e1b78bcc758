using System.Text.Json.Nodes;
using Peft.Tests.Demo;
using Peft.Tests.Support;

namespace Peft.Tests.Cli;

/// <summary>Every <c>peft train --method</c> trains and saves an adapter of its PEFT type on the demo model.</summary>
public class CliTrainMethodsTests
{
    [Theory]
    [InlineData("adalora", "ADALORA")]
    [InlineData("ia3", "IA3")]
    [InlineData("prefix", "PREFIX_TUNING")]
    [InlineData("prompt", "PROMPT_TUNING")]
    [InlineData("ptuning", "P_TUNING")]
    public void MethodTrainsAndSavesItsAdapter(string method, string peftType)
    {
        using var tmp = new TempDir();
        File.WriteAllLines(tmp["train.jsonl"], File.ReadLines(DemoModelTests.RepoPath("data/austen.jsonl")).Where(l => l.Contains("\"split\":\"test\"")).Take(20));
        var r = CliHarness.Run("train", "--model", DemoModelTests.RepoPath("models/peft-demo"), "--data", tmp["train.jsonl"],
            "--format", "text", "--block-size", "64", "--batch-size", "2", "--max-steps", "2", "--method", method, "--num-virtual-tokens", "4",
            "--out", tmp["out"], "--json-events");
        r.AssertOk();
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(tmp["out"], "adapter_config.json")))!;
        Assert.Equal(peftType, config["peft_type"]!.GetValue<string>());
        Assert.Equal("CAUSAL_LM", config["task_type"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(tmp["out"], "adapter_model.safetensors")));
        Assert.Contains("\"type\":\"done\"", r.Out);
    }
}
