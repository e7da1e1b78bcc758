using Peft.Tests.Support;
using TorchSharp;

namespace Peft.Tests.Cli;

/// <summary>Every PEFT method through the CLI: forward on the golden cases, merge where possible, clear errors otherwise.</summary>
public class CliMethodsTests
{
    [Theory]
    [InlineData("llama_ia3", "llama_base", 7)]
    [InlineData("llama_adalora_allocated", "llama_base", 7)]
    [InlineData("llama_prefix_tuning", "llama_base", 7)]
    [InlineData("gpt2_prefix_tuning_proj", "gpt2_base", 7)]
    [InlineData("llama_prompt_tuning", "llama_base", 12)]
    [InlineData("gpt2_p_tuning", "gpt2_base", 12)]
    [InlineData("bloom_prefix_tuning", "bloom_base", 7)]
    public void ForwardMatchesPeft(string caseName, string baseName, int positions)
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        var r = CliHarness.Run("forward", CliHarness.Golden(baseName), "--adapter", CliHarness.Golden(caseName),
            "--input", CliHarness.ExpectedFile(caseName), "--out", tmp["out.safetensors"]);
        r.AssertOk();
        Assert.Contains($"logits [2, {positions}, 128]", r.Out);
        GoldenData.AssertClose(CliHarness.ExpectedTensor(caseName, "logits"), CliHarness.Logits(tmp["out.safetensors"]), 1e-4, caseName);
    }

    [Theory]
    [InlineData("llama_ia3", "llama_base")]
    [InlineData("gpt2_adalora", "gpt2_base")]
    public void MergeableMethodsMerge(string caseName, string baseName)
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        CliHarness.Run("merge", CliHarness.Golden(baseName), "--adapter", CliHarness.Golden(caseName), "--out", tmp["merged"]).AssertOk();
        var r = CliHarness.Run("forward", tmp["merged"], "--input", CliHarness.ExpectedFile(caseName), "--out", tmp["out.safetensors"]);
        r.AssertOk();
        GoldenData.AssertClose(CliHarness.ExpectedTensor(caseName, "logits_merged"), CliHarness.Logits(tmp["out.safetensors"]), 1e-4, caseName);
    }

    [Theory]
    [InlineData("llama_prefix_tuning", "cannot be merged")]
    [InlineData("llama_prompt_tuning", "cannot be merged")]
    public void PromptMethodsRefuseToMerge(string caseName, string message)
    {
        using var tmp = new TempDir();
        var r = CliHarness.Run("merge", CliHarness.Golden("llama_base"), "--adapter", CliHarness.Golden(caseName), "--out", tmp["merged"]);
        Assert.Equal(2, r.Code);
        Assert.Contains(message, r.Err);
        Assert.False(Directory.Exists(tmp["merged"]));
    }

    [Fact]
    public void Ia3CannotMixAdaptersInOneBatch()
    {
        using var tmp = new TempDir();
        var r = CliHarness.Run("forward", CliHarness.Golden("llama_base"), "--adapter", "x=" + CliHarness.Golden("llama_ia3"),
            "--adapter-names", "x,__base__", "--input", CliHarness.ExpectedFile("llama_ia3"), "--out", tmp["out.safetensors"]);
        Assert.Equal(2, r.Code);
        Assert.Contains("mix", r.Err);
    }

    [Theory]
    [InlineData("llama_adalora", "trainable params: 2,712 || all params: 111,580")]
    [InlineData("llama_p_tuning", "trainable params: 5,568 || all params: 114,432")]
    public void ParamsCountsEveryMethod(string caseName, string summary)
    {
        var r = CliHarness.Run("params", CliHarness.Golden("llama_base"), "--adapter-config", CliHarness.Golden(caseName));
        r.AssertOk();
        Assert.Contains(summary, r.Out);
    }

    [Fact]
    public void PrefixTuningGeneratesLikeTransformers()
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        var expected = GoldenData.Expected("llama_generate");
        Peft.Training.IO.Safetensors.Save(tmp["in.safetensors"], [new("input_ids", expected["b2.input_ids"]), new("attention_mask", expected["b2.attention_mask"])]);
        CliHarness.Run("generate", CliHarness.Golden("llama_base"), "--adapter", CliHarness.Golden("llama_prefix_tuning"),
            "--input", tmp["in.safetensors"], "--out", tmp["out.safetensors"], "--max-new-tokens", "8", "--pad-token-id", "0").AssertOk();
        var seq = Peft.Training.IO.Safetensors.Load(tmp["out.safetensors"])["sequences"];
        Assert.True(seq.eq(expected["prefix_tuning.b2.sequences"]).all().item<bool>());
    }
}
