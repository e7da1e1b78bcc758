using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Tuners;

/// <summary>LoRA / rsLoRA / DoRA adapters written by PEFT 0.10: load unchanged, same logits (1e-4), same merged logits.</summary>
public class GoldenLoraTests
{
    public static TheoryData<string, string> Cases => new()
    {
        { "llama_lora", "llama_base" },
        { "llama_lora_rslora", "llama_base" },
        { "llama_lora_dora", "llama_base" },
        { "qwen2_lora", "qwen2_base" },
        { "gpt2_lora", "gpt2_base" },
        { "gpt2_lora_rslora", "gpt2_base" },
        { "opt_lora", "opt_base" },
        { "bloom_lora", "bloom_base" },
        { "bert_lora", "bert_base" },
        { "bert_lora_rslora", "bert_base" },
        { "bert_lora_dora", "bert_base" },
        { "roberta_lora", "roberta_base" },
    };

    private static PeftModel Load(string caseName, string baseName)
    {
        var model = AutoModel.FromPretrained(GoldenData.Dir(baseName));
        model.eval();
        return PeftModel.FromPretrained(model, GoldenData.Dir(caseName));
    }

    [Theory, MemberData(nameof(Cases))]
    public void AdapterLogitsMatchPeft(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var peft = Load(caseName, baseName);
        var expected = GoldenData.Expected(caseName);
        var args = new ForwardArgs { InputIds = expected["input_ids"], AttentionMask = expected["attention_mask"] };
        using var noGrad = torch.no_grad();
        using (var adapted = peft.Forward(args))
            GoldenData.AssertClose(expected["logits"], adapted.Logits, 1e-4, "adapted logits");
        using (peft.DisableAdapters())
        using (var baseOut = peft.Forward(args))
            GoldenData.AssertClose(expected["base_logits"], baseOut.Logits, 1e-4, "base logits with adapters disabled");
        peft.MergeAdapter();
        using (var merged = peft.Forward(args))
            GoldenData.AssertClose(expected["logits_merged"], merged.Logits, 1e-4, "merged logits");
        peft.UnmergeAdapter();
        using (var unmerged = peft.Forward(args))
            GoldenData.AssertClose(expected["logits"], unmerged.Logits, 1e-4, "logits after unmerge");
        var merged2 = peft.MergeAndUnload();
        using (var plain = merged2.Forward(args))
            GoldenData.AssertClose(expected["logits_merged"], plain.Logits, 1e-4, "merge_and_unload logits");
        Assert.DoesNotContain(merged2.named_parameters(), p => p.name.Contains("lora_"));
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
        string dir = Path.Combine(Path.GetTempPath(), "peft-resave-" + Guid.NewGuid().ToString("N"));
        try
        {
            peft.SavePretrained(dir);
            using var golden = SafetensorsFile.Open(Path.Combine(GoldenData.Dir(caseName), "adapter_model.safetensors"));
            using var mine = SafetensorsFile.Open(Path.Combine(dir, "adapter_model.safetensors"));
            Assert.Equal(golden.Entries.Select(e => e.Name).Order(), mine.Entries.Select(e => e.Name).Order());
            foreach (var e in golden.Entries)
            {
                Assert.Equal(e.DType, mine[e.Name].DType);
                Assert.Equal(e.Shape, mine[e.Name].Shape);
                Assert.True(golden.Load(e.Name).eq(mine.Load(e.Name)).all().item<bool>(), $"{e.Name} differs");
            }
            var a = PeftConfigs.Load(GoldenData.Dir(caseName)).ToJson();
            var b = PeftConfigs.Load(dir).ToJson();
            Assert.Equal(a.ToJsonString(), b.ToJsonString());
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
