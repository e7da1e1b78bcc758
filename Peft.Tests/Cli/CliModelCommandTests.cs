using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using TorchSharp;

namespace Peft.Tests.Cli;

/// <summary><c>peft model init</c> / <c>peft model convert</c>: loadable HF folders, atomic writes, clear errors.</summary>
public class CliModelCommandTests
{
    [Fact]
    public void InitWritesALoadableRandomModelAndConvertStoresBf16()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp["config.json"], "{\"model_type\":\"llama\",\"vocab_size\":128,\"hidden_size\":32,\"intermediate_size\":48,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"tie_word_embeddings\":true,\"bos_token_id\":0,\"eos_token_id\":0}");
        CliHarness.Run("model", "init", "--config", tmp["config.json"], "--out", tmp["init"], "--seed", "3").AssertOk();
        Assert.True(File.Exists(Path.Combine(tmp["init"], "generation_config.json")));
        using (var model = AutoModel.FromPretrained(tmp["init"]))
        {
            // transformers' init: weights ~ N(0, 0.02) by default, norms 1.
            var w = model.UniqueNamedParameters().First(p => p.Name.EndsWith("q_proj.weight")).Param;
            Assert.InRange(w.std().item<float>(), 0.015, 0.025);
        }
        CliHarness.Run("model", "convert", tmp["init"], "--dtype", "bfloat16", "--out", tmp["bf16"]).AssertOk();
        using var f = SafetensorsFile.Open(Path.Combine(tmp["bf16"], "model.safetensors"));
        Assert.All(f.Entries, e => Assert.Equal("BF16", e.DType));
        Assert.Contains("\"bfloat16\"", File.ReadAllText(Path.Combine(tmp["bf16"], "config.json")));
        using var reloaded = AutoModel.FromPretrained(tmp["bf16"]);
        Assert.Equal(torch.ScalarType.Float32, reloaded.DType);
    }

    [Fact]
    public void BadInputsExitWithCodeTwo()
    {
        using var tmp = new TempDir();
        CliHarness.Run("model", "init", "--config", tmp["missing.json"], "--out", tmp["x"]).AssertBadInput("missing.json");
        File.WriteAllText(tmp["config.json"], "{\"model_type\":\"llama\",\"vocab_size\":8}");
        CliHarness.Run("model", "init", "--config", tmp["config.json"], "--out", tmp["x"]).AssertBadInput("hidden_size");
        Assert.False(Directory.Exists(tmp["x"]));
        CliHarness.Run("model", "convert", CliHarness.Golden("llama_base"), "--dtype", "int8", "--out", tmp["y"]).AssertBadInput("int8");
    }
}
