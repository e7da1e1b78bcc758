using Peft.Tests.Support;
using Peft.Training.Models;
using TorchSharp;

namespace Peft.Tests.Cli;

/// <summary><c>peft merge</c>: the written folder is a plain HF model whose logits are PEFT's merged logits.</summary>
public class CliMergeTests
{
    private static void AssertMergedFolder(string dir, string caseName)
    {
        using var scope = torch.NewDisposeScope();
        using var model = AutoModel.FromPretrained(dir);
        model.eval();
        Assert.DoesNotContain(model.named_parameters(), p => p.name.Contains("lora_"));
        using var noGrad = torch.no_grad();
        using var output = model.Forward(new ForwardArgs
        {
            InputIds = CliHarness.ExpectedTensor(caseName, "input_ids"),
            AttentionMask = CliHarness.ExpectedTensor(caseName, "attention_mask"),
        });
        GoldenData.AssertClose(CliHarness.ExpectedTensor(caseName, "logits_merged"), output.Logits, 1e-4, $"{caseName} merged folder");
    }

    [Theory]
    [InlineData("llama_lora", "llama_base")]
    [InlineData("gpt2_lora", "gpt2_base")]
    public void MergedFolderLoadsWithMergedLogits(string caseName, string baseName)
    {
        using var tmp = new TempDir();
        string outDir = tmp["merged"];
        var r = CliHarness.Run("merge", CliHarness.Golden(baseName), "--adapter", CliHarness.Golden(caseName), "--out", outDir);
        r.AssertOk();
        Assert.True(File.Exists(Path.Combine(outDir, "config.json")));
        Assert.True(File.Exists(Path.Combine(outDir, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(outDir, "generation_config.json")));
        AssertMergedFolder(outDir, caseName);
        // Nothing but the output folder is left behind (the temporary build folder was renamed into place).
        Assert.Equal([outDir], Directory.GetFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void CopiesTokenizerFilesAndRespectsForce()
    {
        using var tmp = new TempDir();
        string baseDir = CliHarness.CopyDir(CliHarness.Golden("llama_base"), tmp["base"]);
        File.WriteAllText(Path.Combine(baseDir, "tokenizer.json"), "{\"version\":\"1.0\"}");
        File.WriteAllText(Path.Combine(baseDir, "special_tokens_map.json"), "{}");
        string outDir = tmp["merged"];
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "keep.txt"), "old");

        var refused = CliHarness.Run("merge", baseDir, "--adapter", CliHarness.Golden("llama_lora"), "--out", outDir);
        refused.AssertBadInput("--out", "--force");
        Assert.Equal(["keep.txt"], Directory.GetFiles(outDir).Select(Path.GetFileName));
        Assert.Equal(2, Directory.GetFileSystemEntries(tmp.Path).Length); // base, merged: no temp folder left

        var forced = CliHarness.Run("merge", baseDir, "--adapter", CliHarness.Golden("llama_lora"), "--out", outDir, "--force");
        forced.AssertOk();
        Assert.False(File.Exists(Path.Combine(outDir, "keep.txt")));
        Assert.Equal("{\"version\":\"1.0\"}", File.ReadAllText(Path.Combine(outDir, "tokenizer.json")));
        Assert.True(File.Exists(Path.Combine(outDir, "special_tokens_map.json")));
        Assert.False(File.Exists(Path.Combine(outDir, "tokenizer_config.json")));
        AssertMergedFolder(outDir, "llama_lora");
        Assert.Equal(2, Directory.GetFileSystemEntries(tmp.Path).Length);
    }

    [Fact]
    public void AnAdapterOnATiedOutputHeadIsRefusedAndNothingIsWritten()
    {
        using var tmp = new TempDir();
        // The demo model ties lm_head to the embeddings; the demo results' LoRA adapts lm_head.
        string model = Peft.Tests.Demo.DemoModelTests.RepoPath("models/peft-demo");
        File.WriteAllLines(tmp["text.jsonl"], File.ReadLines(Peft.Tests.Demo.DemoModelTests.RepoPath("data/austen.jsonl")).Take(20));
        CliHarness.Run("train", "--model", model, "--data", tmp["text.jsonl"], "--format", "text", "--block-size", "64", "--max-steps", "1",
            "--method", "lora", "--r", "2", "--target-modules", "lm_head", "--out", tmp["adapter"]).AssertOk();
        CliHarness.Run("merge", model, "--adapter", tmp["adapter"], "--out", tmp["merged"]).AssertBadInput("lm_head", "tied", "unmerged");
        Assert.False(Directory.Exists(tmp["merged"]));
        Assert.Equal(["adapter", "text.jsonl"], Directory.GetFileSystemEntries(tmp.Path).Select(Path.GetFileName).Order());
    }
}
