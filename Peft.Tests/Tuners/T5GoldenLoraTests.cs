using Peft.Tests.Models;
using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Tuners;

/// <summary>
/// LoRA / rsLoRA / DoRA adapters on T5 and mT5 written by PEFT 0.10 (targets q, v in encoder self-, decoder self- and
/// cross-attention): logits, base logits with adapters disabled, merged logits, counts, re-saved files and config.
/// Tolerance 1e-4 absolute; mT5 logits 1e-4 relative to max |logit| (≈ 2.6e-3, see <see cref="T5GoldenModelTests"/>).
/// </summary>
public class T5GoldenLoraTests
{
    public static TheoryData<string, string> Cases => new()
    {
        { "t5_lora", "t5_base" },
        { "t5_lora_rslora", "t5_base" },
        { "t5_lora_dora", "t5_base" },
        { "mt5_lora", "mt5_base" },
    };

    private static PeftModel Load(string caseName, string baseName)
    {
        var model = AutoModel.FromPretrained(GoldenData.Dir(baseName));
        model.eval();
        return PeftModel.FromPretrained(model, GoldenData.Dir(caseName));
    }

    private static ForwardArgs Args(Dictionary<string, Tensor> e) => new()
    {
        InputIds = e["input_ids"],
        AttentionMask = e["attention_mask"],
        DecoderInputIds = e["decoder_input_ids"],
    };

    [Theory, MemberData(nameof(Cases))]
    public void AdapterLogitsMatchPeft(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var peft = Load(caseName, baseName);
        var expected = GoldenData.Expected(caseName);
        var args = Args(expected);
        void Check(string key, Tensor actual, string what) =>
            GoldenData.AssertClose(expected[key], actual, T5GoldenModelTests.LogitTolerance(caseName, expected[key]), what);
        using var noGrad = torch.no_grad();
        using (var adapted = peft.Forward(args))
            Check("logits", adapted.Logits, "adapted logits");
        using (peft.DisableAdapters())
        using (var baseOut = peft.Forward(args))
            Check("base_logits", baseOut.Logits, "base logits with adapters disabled");
        peft.MergeAdapter();
        using (var merged = peft.Forward(args))
            Check("logits_merged", merged.Logits, "merged logits");
        peft.UnmergeAdapter();
        using (var unmerged = peft.Forward(args))
            Check("logits", unmerged.Logits, "logits after unmerge");
        var plain = peft.MergeAndUnload();
        using (var output = plain.Forward(args))
            Check("logits_merged", output.Logits, "merge_and_unload logits");
        Assert.DoesNotContain(plain.named_parameters(), p => p.name.Contains("lora_"));
    }

    [Theory, MemberData(nameof(Cases))]
    public void TrainableParameterCountsMatchPeft(string caseName, string baseName)
    {
        using var model = AutoModel.FromPretrained(GoldenData.Dir(baseName));
        var config = PeftConfigs.Load(GoldenData.Dir(caseName));
        config.InferenceMode = false;
        using var peft = PeftModel.Create(model, config);
        var (trainable, all) = peft.GetNbTrainableParameters();
        Assert.Equal(GoldenData.Counts(caseName), (trainable, all));
        Assert.Equal(PeftModel.FormatSummary(trainable, all), peft.TrainableParametersSummary());
    }

    [Theory, MemberData(nameof(Cases))]
    public void ResavedAdapterEqualsGoldenFiles(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var peft = Load(caseName, baseName);
        using var dir = new TempDir();
        peft.SavePretrained(dir.Path);
        using var golden = SafetensorsFile.Open(Path.Combine(GoldenData.Dir(caseName), "adapter_model.safetensors"));
        using var mine = SafetensorsFile.Open(Path.Combine(dir.Path, "adapter_model.safetensors"));
        Assert.Equal(golden.Entries.Select(e => e.Name).Order(), mine.Entries.Select(e => e.Name).Order());
        // 2 encoder blocks × (q, v) + 2 decoder blocks × (self q, v + cross q, v), A and B each (+ DoRA magnitudes).
        Assert.Equal(caseName.EndsWith("dora", StringComparison.Ordinal) ? 36 : 24, golden.Entries.Count);
        foreach (var e in golden.Entries)
        {
            Assert.Equal(e.DType, mine[e.Name].DType);
            Assert.Equal(e.Shape, mine[e.Name].Shape);
            Assert.True(golden.Load(e.Name).eq(mine.Load(e.Name)).all().item<bool>(), $"{e.Name} differs");
        }
        var a = PeftConfigs.Load(GoldenData.Dir(caseName)).ToJson();
        var b = PeftConfigs.Load(dir.Path).ToJson();
        Assert.Equal(a.ToJsonString(), b.ToJsonString());
    }

    [Fact]
    public void DefaultTargetsAreQAndV()
    {
        // mt5_lora was made with PEFT's default target modules for mt5.
        using var model = AutoModel.FromPretrained(GoldenData.Dir("mt5_base"));
        var config = PeftConfigs.Load(GoldenData.Dir("mt5_lora"));
        ((Peft.Training.Tuners.Lora.LoraConfig)config).TargetModules = null;
        config.InferenceMode = false;
        using var peft = PeftModel.Create(model, config);
        Assert.Equal(GoldenData.Counts("mt5_lora"), peft.GetNbTrainableParameters());
        var wrapped = peft.AdapterTensors(PeftModel.DefaultAdapterName).Select(t => t.CheckpointKey).ToList();
        Assert.Contains("base_model.model.decoder.block.1.layer.1.EncDecAttention.v.lora_B.weight", wrapped);
        Assert.Contains("base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight", wrapped);
    }
}
