using System.Text.Json.Nodes;
using Peft.Tests.Demo;
using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Cli;

/// <summary><c>peft quantize</c>, <c>--quantize</c> on train/generate/eval, and merging an adapter trained on a quantised base.</summary>
public class CliQuantizeTests
{
    private static string Demo => DemoModelTests.RepoPath("models/peft-demo");

    [Fact]
    public void QuantizeWritesTheBitsandbytesFolderThatReloadsBitForBitAndGenerates()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        var r = CliHarness.Run("quantize", Demo, "--method", "nf4", "--double-quant", "--out", tmp["q"]);
        r.AssertOk();
        Assert.Contains("quantised 42 linear layers", r.Out);   // 6 layers × 7 projections; tied head and embeddings stay bf16
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(tmp["q"], "config.json")))!["quantization_config"]!;
        Assert.Equal("nf4", (string)cfg["bnb_4bit_quant_type"]!);
        Assert.True((bool)cfg["bnb_4bit_use_double_quant"]!);
        Assert.True(File.Exists(Path.Combine(tmp["q"], "tokenizer.json")));
        using (var reader = CheckpointReader.OpenFolder(tmp["q"]))
        {
            Assert.True(reader.Contains("model.layers.5.mlp.down_proj.weight.quant_state.bitsandbytes__nf4"));
            Assert.True(reader.Contains("model.layers.5.mlp.down_proj.weight.nested_absmax"));
            Assert.Equal("BF16", reader.Entry("model.embed_tokens.weight").DType);
        }

        using var reloaded = AutoModel.FromPretrained(tmp["q"]);
        using var fresh = AutoModel.FromPretrained(Demo, new ModelLoadOptions { Quantization = new QuantizationConfig { Method = QuantMethod.Nf4, DoubleQuant = true } });
        var a = QuantizedLoading.QuantisedLayers(reloaded);
        var b = QuantizedLoading.QuantisedLayers(fresh);
        Assert.Equal(42, a.Count);
        foreach (var (path, lin) in b)
        {
            using var w0 = lin.Quantized!.Dequantize(ScalarType.Float32);
            using var w1 = a[path].Quantized!.Dequantize(ScalarType.Float32);
            Assert.True((w0 == w1).all().item<bool>(), path);
        }
        // NF4 + double quant: the quantised linear weights take ~0.13x of their fp32 bytes.
        long fp32 = b.Values.Sum(l => l.InFeatures * l.OutFeatures * 4);
        long held = b.Values.Sum(l => l.Quantized!.StorageBytes);
        Assert.InRange((double)held / fp32, 0.125, 0.135);

        var g = CliHarness.Run("generate", tmp["q"], "--prompt", "It is a truth universally", "--max-new-tokens", "6");
        g.AssertOk();
        Assert.StartsWith("It is a truth universally", g.Out);
        Assert.True(g.Out.Trim().Length > "It is a truth universally".Length);
    }

    [Theory]
    [InlineData(new[] { "quantize", "DEMO", "--method", "nf3", "--out", "OUT" }, "--method", "nf3")]
    [InlineData(new[] { "quantize", "DEMO", "--method", "int8", "--double-quant", "--out", "OUT" }, "--double-quant")]
    [InlineData(new[] { "generate", "DEMO", "--prompt", "x", "--quantize", "int4" }, "--quantize", "int4")]
    [InlineData(new[] { "generate", "DEMO", "--prompt", "x", "--double-quant" }, "--double-quant needs --quantize")]
    public void BadQuantisationArgumentsExitTwoNamingTheFlag(string[] args, params string[] fragments)
    {
        using var tmp = new TempDir();
        var r = CliHarness.Run(args.Select(a => a == "DEMO" ? Demo : a == "OUT" ? tmp["out"] : a).ToArray());
        r.AssertBadInput(fragments);
        Assert.False(Directory.Exists(tmp["out"]));
    }

    [Fact]
    public void QloraTrainingThenMergeGivesAFullPrecisionModel()
    {
        using var tmp = new TempDir();
        File.WriteAllLines(tmp["train.jsonl"], File.ReadLines(DemoModelTests.RepoPath("data/austen.jsonl")).Where(l => l.Contains("\"split\":\"test\"")).Take(12));
        var t = CliHarness.Run("train", "--model", Demo, "--data", tmp["train.jsonl"], "--format", "text", "--block-size", "32",
            "--batch-size", "2", "--max-steps", "2", "--method", "lora", "--quantize", "nf4", "--bf16", "--gradient-checkpointing",
            "--out", tmp["adapter"], "--json-events");
        t.AssertOk();
        Assert.Contains("\"type\":\"done\"", t.Out);
        Assert.True(File.Exists(Path.Combine(tmp["adapter"], "adapter_model.safetensors")));

        // The adapter goes on the bitsandbytes folder; merge dequantises first and writes plain float32 weights.
        CliHarness.Run("quantize", Demo, "--method", "nf4", "--out", tmp["q"]).AssertOk();
        var m = CliHarness.Run("merge", tmp["q"], "--adapter", tmp["adapter"], "--out", tmp["merged"]);
        m.AssertOk();
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(tmp["merged"], "config.json")))!;
        Assert.Null(cfg["quantization_config"]);
        using var reader = CheckpointReader.OpenFolder(tmp["merged"]);
        Assert.Equal("F32", reader.Entry("model.layers.0.self_attn.q_proj.weight").DType);
        Assert.Equal(new long[] { 256, 256 }, reader.Entry("model.layers.0.self_attn.q_proj.weight").Shape);
        Assert.DoesNotContain(reader.Keys, k => k.Contains("absmax"));

        var e = CliHarness.Run("eval", Demo, "--adapter", tmp["adapter"], "--data", tmp["train.jsonl"], "--block-size", "32", "--quantize", "nf4");
        e.AssertOk();
        Assert.Contains("\"eval_loss\"", e.Out);
    }
}
