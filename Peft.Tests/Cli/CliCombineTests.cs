using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Cli;

/// <summary>
/// <c>peft combine</c> (add_weighted_adapter) on the two mixed-batch adapters (r=4, alpha=8, so scaling 2). The
/// expected logits are computed independently: two adapters active at once add both deltas to the base output.
/// </summary>
public class CliCombineTests
{
    private static readonly string MixedBatch = CliHarness.Golden("llama_lora_mixed_batch");
    private static readonly string AdapterA = Path.Combine(MixedBatch, "adapter_a");
    private static readonly string AdapterB = Path.Combine(MixedBatch, "adapter_b");

    private static ForwardArgs Inputs() => new()
    {
        InputIds = CliHarness.ExpectedTensor("llama_lora_mixed_batch", "input_ids"),
        AttentionMask = CliHarness.ExpectedTensor("llama_lora_mixed_batch", "attention_mask"),
    };

    /// <summary>Logits of llama_base with the given adapter folders loaded and all of them active.</summary>
    private static Tensor LogitsWith(params string[] adapterDirs)
    {
        var model = AutoModel.FromPretrained(CliHarness.Golden("llama_base"));
        model.eval();
        using var peft = PeftModel.FromPretrained(model, adapterDirs[0], "s0");
        for (int i = 1; i < adapterDirs.Length; i++) peft.LoadAdapter(adapterDirs[i], $"s{i}");
        peft.SetAdapters(Enumerable.Range(0, adapterDirs.Length).Select(i => $"s{i}").ToList());
        using var noGrad = torch.no_grad();
        using var output = peft.Forward(Inputs());
        return output.Logits.clone();
    }

    private static string Combine(TempDir tmp, string name, params string[] options)
    {
        string outDir = tmp[name];
        var r = CliHarness.Run(["combine", CliHarness.Golden("llama_base"), .. options, "--out", outDir]);
        r.AssertOk();
        Assert.True(File.Exists(Path.Combine(outDir, PeftModel.ConfigFileName)));
        Assert.True(File.Exists(Path.Combine(outDir, PeftModel.WeightsFileName)));
        return outDir;
    }

    [Fact]
    public void CatEqualsBothAdaptersActive()
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        string cat = Combine(tmp, "cat", "--adapter", AdapterA, "--adapter", AdapterB, "--weights", "1,1", "--combination-type", "cat");
        var config = (LoraConfig)PeftConfigs.Load(cat);
        Assert.Equal(8, config.R);
        Assert.Equal(8, config.LoraAlpha);
        var both = LogitsWith(AdapterA, AdapterB);
        GoldenData.AssertClose(both, LogitsWith(cat), 1e-4, "cat(a, b) vs a+b active");
        // Sanity: the combination is not just one of the sources.
        Assert.True(GoldenData.MaxAbsDiff(both, CliHarness.ExpectedTensor("llama_lora_mixed_batch", "logits_adapter_a")) > 1e-2);
    }

    [Fact]
    public void WeightedCatScalesEachDelta()
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        string cat = Combine(tmp, "cat", "--adapter", AdapterA, "--adapter", AdapterB, "--weights", "0.5,-1", "--combination-type", "cat");
        // Expected: both sources active at once with their scalings multiplied by the weights (base + 0.5·ΔA − ΔB).
        var model = AutoModel.FromPretrained(CliHarness.Golden("llama_base"));
        model.eval();
        using var peft = PeftModel.FromPretrained(model, AdapterA, "a");
        peft.LoadAdapter(AdapterB, "b");
        var lora = (LoraTuner)peft.Tuner;
        foreach (var (_, layer) in lora.Layers)
        {
            layer.Settings["a"].Scaling *= 0.5;
            layer.Settings["b"].Scaling *= -1;
        }
        peft.SetAdapters(["a", "b"]);
        using var noGrad = torch.no_grad();
        using var expected = peft.Forward(Inputs());
        GoldenData.AssertClose(expected.Logits, LogitsWith(cat), 1e-4, "cat with weights 0.5, -1");
    }

    [Fact]
    public void LinearOfOneAdapterReproducesIt()
    {
        // Single source: PEFT forces "linear"; A and B each get √(w·s), the new scaling is 1, so ΔW = w·s·B·A.
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        string lin = Combine(tmp, "lin", "--adapter", AdapterA, "--weights", "1.0", "--combination-type", "linear");
        Assert.Equal(4, ((LoraConfig)PeftConfigs.Load(lin)).R);
        GoldenData.AssertClose(CliHarness.ExpectedTensor("llama_lora_mixed_batch", "logits_adapter_a"), LogitsWith(lin), 1e-4, "linear(a)");
    }

    [Fact]
    public void FullRankSvdReproducesCatWithTheScalingAppliedTwice()
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        string[] sources = ["--adapter", AdapterA, "--adapter", AdapterB];
        // Both sources have scaling 2: cat builds Σ wᵢ·2·ΔWᵢ, PEFT's svd Σ wᵢ·4·ΔWᵢ, so halved svd weights match cat.
        string cat = Combine(tmp, "cat", [.. sources, "--weights", "0.8,0.5", "--combination-type", "cat"]);
        string svd = Combine(tmp, "svd", [.. sources, "--weights", "0.4,0.25", "--combination-type", "svd", "--svd-rank", "8"]);
        Assert.Equal(8, ((LoraConfig)PeftConfigs.Load(svd)).R);
        GoldenData.AssertClose(LogitsWith(cat), LogitsWith(svd), 1e-4, "svd rank 8 vs cat");
    }

    [Theory]
    [InlineData("ties")]
    [InlineData("dare_linear")]
    [InlineData("magnitude_prune")]
    public void DensityTypesWriteLoadableAdapters(string type)
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        string dir = Combine(tmp, type, "--adapter", AdapterA, "--adapter", AdapterB, "--weights", "1,1",
            "--combination-type", type, "--density", "0.5");
        var logits = LogitsWith(dir);
        Assert.True(logits.isfinite().all().item<bool>());
    }

    [Fact]
    public void ApiAddsWithoutActivating()
    {
        using var scope = torch.NewDisposeScope();
        var model = AutoModel.FromPretrained(CliHarness.Golden("llama_base"));
        using var peft = PeftModel.FromPretrained(model, AdapterA, "a");
        peft.LoadAdapter(AdapterB, "b");
        peft.AddWeightedAdapter(["a", "b"], [1.0, 1.0], "ab", "cat");
        Assert.Equal(["a"], peft.ActiveAdapters);
        Assert.Equal(8, ((LoraConfig)peft.Configs["ab"]).R);
        Assert.Throws<ArgumentException>(() => peft.AddWeightedAdapter(["a", "b"], [1.0], "x", "cat"));
        Assert.Throws<ArgumentException>(() => peft.AddWeightedAdapter(["a", "b"], [1.0, 1.0], "x", "ties"));
        Assert.Throws<ArgumentException>(() => peft.AddWeightedAdapter(["a", "nope"], [1.0, 1.0], "x", "cat"));
        Assert.False(peft.Configs.ContainsKey("x"));
    }

    [Fact]
    public void RefusesDora()
    {
        using var tmp = new TempDir();
        var r = CliHarness.Run("combine", CliHarness.Golden("llama_base"), "--adapter", CliHarness.Golden("llama_lora"),
            "--adapter", CliHarness.Golden("llama_lora_dora"), "--weights", "1,1", "--combination-type", "cat", "--out", tmp["x"]);
        r.AssertBadInput("llama_lora_dora", "DoRA");
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));
    }
}
