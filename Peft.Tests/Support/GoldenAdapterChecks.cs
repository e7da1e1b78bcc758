using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;

namespace Peft.Tests.Support;

/// <summary>The checks every golden adapter case gets: logits (adapted, disabled, merged), counts, byte-equal re-save.</summary>
public static class GoldenAdapterChecks
{
    public static PeftModel Load(string caseName, string baseName)
    {
        var model = AutoModel.FromPretrained(GoldenData.Dir(baseName));
        model.eval();
        return PeftModel.FromPretrained(model, GoldenData.Dir(caseName));
    }

    /// <summary>The case's inputs (decoder ids too for encoder-decoder cases).</summary>
    public static ForwardArgs Args(Dictionary<string, TorchSharp.torch.Tensor> e) => new()
    {
        InputIds = e["input_ids"],
        AttentionMask = e["attention_mask"],
        DecoderInputIds = e.TryGetValue("decoder_input_ids", out var d) ? d : null,
    };

    /// <summary>1e-4 absolute; mT5's logits reach ~26 (lm_head init std 1.0), so there 1e-4 relative to max |logit|.</summary>
    public static double Tolerance(string caseName, TorchSharp.torch.Tensor expected)
    {
        if (!caseName.StartsWith("mt5", StringComparison.Ordinal)) return 1e-4;
        using var max = expected.abs().max();
        return 1e-4 * Math.Max(1.0, max.item<float>());
    }

    public static void LogitsMatch(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var peft = Load(caseName, baseName);
        var expected = GoldenData.Expected(caseName);
        var args = Args(expected);
        double tol = Tolerance(caseName, expected["logits"]);
        using var noGrad = torch.no_grad();
        using (var adapted = peft.Forward(args))
            GoldenData.AssertClose(expected["logits"], adapted.Logits, tol, "adapted logits");
        using (peft.DisableAdapters())
        using (var baseOut = peft.Forward(args))
            GoldenData.AssertClose(expected["base_logits"], baseOut.Logits, tol, "base logits with adapters disabled");
        peft.MergeAdapter();
        using (var merged = peft.Forward(args))
            GoldenData.AssertClose(expected["logits_merged"], merged.Logits, tol, "merged logits");
        peft.UnmergeAdapter();
        using (var unmerged = peft.Forward(args))
            GoldenData.AssertClose(expected["logits"], unmerged.Logits, tol, "logits after unmerge");
        var plainModel = peft.MergeAndUnload();
        using (var plain = plainModel.Forward(args))
            GoldenData.AssertClose(expected["logits_merged"], plain.Logits, tol, "merge_and_unload logits");
        Assert.DoesNotContain(plainModel.named_parameters(), p => p.name.Contains("lora_") || p.name.Contains("ia3_") || p.name.Contains("ranknum"));
    }

    public static void CountsMatch(string caseName, string baseName)
    {
        using var model = AutoModel.FromPretrained(GoldenData.Dir(baseName));
        var config = PeftConfigs.Load(GoldenData.Dir(caseName));
        config.InferenceMode = false;
        using var peft = PeftModel.Create(model, config);
        var (trainable, all) = peft.GetNbTrainableParameters();
        Assert.Equal(GoldenData.Counts(caseName), (trainable, all));
    }

    public static void ResaveMatches(string caseName, string baseName)
    {
        using var peft = Load(caseName, baseName);
        string dir = Path.Combine(Path.GetTempPath(), "peft-resave-" + Guid.NewGuid().ToString("N"));
        try
        {
            peft.SavePretrained(dir);
            AssertSameAdapterFiles(GoldenData.Dir(caseName), dir, exactValues: true);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Same keys, dtypes and shapes (and values: exact, or within <paramref name="tol"/>); configs parse to the same fields.</summary>
    public static void AssertSameAdapterFiles(string expectedDir, string actualDir, bool exactValues, double tol = 0)
    {
        using var scope = torch.NewDisposeScope();
        using var golden = SafetensorsFile.Open(Path.Combine(expectedDir, PeftModel.WeightsFileName));
        using var mine = SafetensorsFile.Open(Path.Combine(actualDir, PeftModel.WeightsFileName));
        Assert.Equal(golden.Entries.Select(e => e.Name).Order(), mine.Entries.Select(e => e.Name).Order());
        foreach (var e in golden.Entries)
        {
            Assert.Equal(e.DType, mine[e.Name].DType);
            Assert.Equal(e.Shape, mine[e.Name].Shape);
            if (exactValues) Assert.True(golden.Load(e.Name).eq(mine.Load(e.Name)).all().item<bool>(), $"{e.Name} differs");
            else if (e.Shape.All(d => d > 0)) GoldenData.AssertClose(golden.Load(e.Name), mine.Load(e.Name), tol, e.Name);
        }
        var a = PeftConfigs.Load(expectedDir).ToJson();
        var b = PeftConfigs.Load(actualDir).ToJson();
        Assert.Equal(a.ToJsonString(), b.ToJsonString());
    }
}
