using Peft.Tests.Support;
using TorchSharp;

namespace Peft.Tests.Cli;

/// <summary>
/// <c>peft forward</c> on the golden cases. The golden expected.safetensors is the input: it holds input_ids and
/// attention_mask plus extra tensors (logits, base_logits ...) that the command must ignore.
/// </summary>
public class CliForwardTests
{
    private const double Tol = 1e-4;

    private static void AssertForward(string expectedCase, string expectedKey, params string[] args)
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        string output = tmp["out.safetensors"];
        var r = CliHarness.Run([.. args, "--input", CliHarness.ExpectedFile(expectedCase), "--out", output]);
        r.AssertOk();
        Assert.Contains("logits [2, 7, 128]", r.Out);
        var logits = CliHarness.Logits(output);
        Assert.Equal(TorchSharp.torch.ScalarType.Float32, logits.dtype);
        GoldenData.AssertClose(CliHarness.ExpectedTensor(expectedCase, expectedKey), logits, Tol, $"{expectedCase}/{expectedKey}");
    }

    [Theory]
    [InlineData("llama_lora", "llama_base")]
    [InlineData("gpt2_lora", "gpt2_base")]
    public void AdapterLogitsMatchPeft(string caseName, string baseName) =>
        AssertForward(caseName, "logits", "forward", CliHarness.Golden(baseName), "--adapter", CliHarness.Golden(caseName));

    [Theory]
    [InlineData("llama_lora", "llama_base")]
    [InlineData("gpt2_lora", "gpt2_base")]
    public void MergedLogitsMatchPeft(string caseName, string baseName) =>
        AssertForward(caseName, "logits_merged", "forward", CliHarness.Golden(baseName), "--adapter", CliHarness.Golden(caseName), "--merge");

    [Fact]
    public void BaseModelWithoutAdapter() =>
        AssertForward("llama_lora", "base_logits", "forward", CliHarness.Golden("llama_base"));

    [Theory]
    [InlineData("adapter_a,adapter_b", "logits_mixed_a_b")]
    [InlineData("adapter_b,__base__", "logits_mixed_b_base")]
    public void MixedBatch(string rowNames, string expectedKey)
    {
        string mb = CliHarness.Golden("llama_lora_mixed_batch");
        AssertForward("llama_lora_mixed_batch", expectedKey, "forward", CliHarness.Golden("llama_base"),
            "--adapter", Path.Combine(mb, "adapter_a"), "--adapter", Path.Combine(mb, "adapter_b"), "--adapter-names", rowNames);
    }

    [Fact]
    public void DoraRowsMixWithBaseRows()
    {
        // PEFT 0.10 refuses adapter_names with DoRA; here each DoRA row gets DoRA's own logits (golden) beside a base row.
        string dora = CliHarness.Golden("llama_lora_dora");
        AssertForward("llama_lora_dora", "logits", "forward", CliHarness.Golden("llama_base"), "--adapter", dora,
            "--adapter-names", "llama_lora_dora,llama_lora_dora");
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        CliHarness.Run(["forward", CliHarness.Golden("llama_base"), "--adapter", dora, "--adapter-names", "llama_lora_dora,__base__",
            "--input", CliHarness.ExpectedFile("llama_lora_dora"), "--out", tmp["out.safetensors"]]).AssertOk();
        var logits = CliHarness.Logits(tmp["out.safetensors"]);
        GoldenData.AssertClose(CliHarness.ExpectedTensor("llama_lora_dora", "logits")[0], logits[0], Tol, "DoRA row");
        GoldenData.AssertClose(CliHarness.ExpectedTensor("llama_lora_dora", "base_logits")[1], logits[1], Tol, "base row");
    }

    [Fact]
    public void FirstAdapterIsActiveWithoutAdapterNames()
    {
        string mb = CliHarness.Golden("llama_lora_mixed_batch");
        AssertForward("llama_lora_mixed_batch", "logits_adapter_b", "forward", CliHarness.Golden("llama_base"),
            "--adapter", Path.Combine(mb, "adapter_b"), "--adapter", Path.Combine(mb, "adapter_a"));
    }

    [Fact]
    public void ExplicitAdapterNames()
    {
        string mb = CliHarness.Golden("llama_lora_mixed_batch");
        AssertForward("llama_lora_mixed_batch", "logits_mixed_a_b", "forward", CliHarness.Golden("llama_base"),
            "--adapter", "x=" + Path.Combine(mb, "adapter_a"), "--adapter", "y=" + Path.Combine(mb, "adapter_b"), "--adapter-names", "x,y");
    }
}
