using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;

namespace Peft.Tests.Tuners;

/// <summary>T5/mT5 specifics of the LoRA goldens (the cases themselves run in <see cref="GoldenLoraTests"/>).</summary>
public class T5GoldenLoraTests
{
    [Fact]
    public void SavedKeysCoverEncoderDecoderAndCrossAttention()
    {
        using var dir = new TempDir();
        using var peft = GoldenAdapterChecks.Load("t5_lora_dora", "t5_base");
        peft.SavePretrained(dir.Path);
        using var golden = Peft.Training.IO.SafetensorsFile.Open(Path.Combine(GoldenData.Dir("t5_lora_dora"), "adapter_model.safetensors"));
        // 2 encoder blocks × (q, v) + 2 decoder blocks × (self q, v + cross q, v): A, B and DoRA magnitude each.
        Assert.Equal(36, golden.Entries.Count);
        GoldenAdapterChecks.AssertSameAdapterFiles(GoldenData.Dir("t5_lora_dora"), dir.Path, exactValues: true);
    }

    [Fact]
    public void DefaultTargetsAreQAndV()
    {
        // mt5_lora was made with PEFT's default target modules for mt5.
        using var model = AutoModel.FromPretrained(GoldenData.Dir("mt5_base"));
        var config = PeftConfigs.Load(GoldenData.Dir("mt5_lora"));
        ((LoraConfig)config).TargetModules = null;
        config.InferenceMode = false;
        using var peft = PeftModel.Create(model, config);
        Assert.Equal(GoldenData.Counts("mt5_lora"), peft.GetNbTrainableParameters());
        var wrapped = peft.AdapterTensors(PeftModel.DefaultAdapterName).Select(t => t.CheckpointKey).ToList();
        Assert.Contains("base_model.model.decoder.block.1.layer.1.EncDecAttention.v.lora_B.weight", wrapped);
        Assert.Contains("base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight", wrapped);
    }
}
