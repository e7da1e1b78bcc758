using Peft.Tests.Cli;
using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

// Under the `FullyQualifiedName~Merge` filter with the other combination tests.
namespace Peft.Tests.Tuners.Merge;

/// <summary>
/// add_weighted_adapter against PEFT 0.10 (Golden/llama_add_weighted_adapter): two sources with different alphas
/// (scaling 4 and 1) and target sets, weights [0.6, 1.2]. The svd family multiplies each delta by its scaling twice
/// in PEFT, which the combination reproduces; cat and linear apply it once.
/// </summary>
public class GoldenWeightedAdapterTests
{
    private const string Case = "llama_add_weighted_adapter";

    public static TheoryData<string, string, int?, double?> Combinations => new()
    {
        { "comb_cat", "cat", null, null },
        { "comb_linear", "linear", null, null },
        { "comb_svd", "svd", 3, null },
        { "comb_ties_svd", "ties_svd", 3, 0.5 },
        { "comb_magnitude_prune_svd", "magnitude_prune_svd", 3, 0.5 },
    };

    private static PeftModel LoadSources()
    {
        var model = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
        model.eval();
        var peft = PeftModel.FromPretrained(model, CliHarness.Golden(Case, "lora_a"), "lora_a");
        peft.LoadAdapter(CliHarness.Golden(Case, "lora_b"), "lora_b");
        return peft;
    }

    private static double[] Weights(Dictionary<string, Tensor> expected) =>
        expected["weights"].to(ScalarType.Float64).data<double>().ToArray();

    [Theory, MemberData(nameof(Combinations))]
    public void LibraryCombinationEqualsPeft(string name, string type, int? svdRank, double? density)
    {
        using var scope = torch.NewDisposeScope();
        var expected = GoldenData.Expected(Case);
        using var peft = LoadSources();
        peft.AddWeightedAdapter(["lora_a", "lora_b"], Weights(expected), name, type, svdRank, density);
        using var dir = new TempDir();
        peft.SavePretrained(dir.Path, [name]);
        AssertSameAdapter(name, Path.Combine(dir.Path, name), expected);
    }

    [Theory, MemberData(nameof(Combinations))]
    public void PeftCombineEqualsPeft(string name, string type, int? svdRank, double? density)
    {
        using var scope = torch.NewDisposeScope();
        var expected = GoldenData.Expected(Case);
        using var dir = new TempDir();
        string outDir = dir.Sub("combined");
        var w = Weights(expected);
        List<string> args = ["combine", GoldenData.Dir("llama_base"), "--adapter", "lora_a=" + CliHarness.Golden(Case, "lora_a"),
            "--adapter", "lora_b=" + CliHarness.Golden(Case, "lora_b"),
            "--weights", string.Join(",", w.Select(x => x.ToString("R", System.Globalization.CultureInfo.InvariantCulture))),
            "--combination-type", type, "--out", outDir];
        if (svdRank is int r) args.AddRange(["--svd-rank", r.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        if (density is double d) args.AddRange(["--density", d.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        CliHarness.Run([.. args]).AssertOk();
        AssertSameAdapter(name, outDir, expected);
    }

    /// <summary>Same config shape, same B·A per module (SVD factors only up to sign), same logits as PEFT's adapter.</summary>
    private static void AssertSameAdapter(string name, string folder, Dictionary<string, Tensor> expected)
    {
        var mine = (LoraConfig)PeftConfigs.Load(folder);
        var peftConfig = (LoraConfig)PeftConfigs.Load(CliHarness.Golden(Case, name));
        Assert.Equal(peftConfig.R, mine.R);
        Assert.Equal(peftConfig.LoraAlpha, mine.LoraAlpha);
        Assert.Equal(peftConfig.TargetModules!.Items!.Order(), mine.TargetModules!.Items!.Order());

        var ours = Safetensors.Load(Path.Combine(folder, PeftModel.WeightsFileName));
        var theirs = Safetensors.Load(Path.Combine(CliHarness.Golden(Case, name), PeftModel.WeightsFileName));
        Assert.Equal(theirs.Keys.Order(), ours.Keys.Order());
        foreach (var aKey in theirs.Keys.Where(k => k.Contains(".lora_A.", StringComparison.Ordinal)))
        {
            string bKey = aKey.Replace(".lora_A.", ".lora_B.", StringComparison.Ordinal);
            GoldenData.AssertClose(theirs[bKey].matmul(theirs[aKey]), ours[bKey].matmul(ours[aKey]), 1e-5, $"{name}: B·A of {aKey}");
        }

        var model = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
        model.eval();
        using var peft = PeftModel.FromPretrained(model, folder, name);
        using var noGrad = torch.no_grad();
        using var output = peft.Forward(new ForwardArgs { InputIds = expected["input_ids"], AttentionMask = expected["attention_mask"] });
        GoldenData.AssertClose(expected["logits_" + name], output.Logits, 1e-4, $"{name}: logits");
        // The combination changes the model: its logits are not the base model's.
        Assert.True(GoldenData.MaxAbsDiff(expected["base_logits"], output.Logits) > 1e-3, $"{name}: no effect");
    }
}
