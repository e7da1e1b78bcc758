using System.Text.Json.Nodes;
using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Training.Tuners.AdaLora;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Tuners;

public class AdaLoraTests
{
    private static PretrainedModel Llama()
    {
        var m = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
        m.eval();
        return m;
    }

    private static AdaLoraConfig Config() => new() { InitR = 6, TargetR = 2, TotalStep = 4, Tfinal = 1 };

    [Theory]
    [InlineData("""{"peft_type":"ADALORA"}""", "'total_step' must be a positive integer")]
    [InlineData("""{"peft_type":"ADALORA","total_step":0}""", "'total_step' must be a positive integer")]
    [InlineData("""{"peft_type":"ADALORA","total_step":10,"tinit":5,"tfinal":5}""", "'tinit' (5) must be smaller than 'total_step' - 'tfinal' (10 - 5 = 5)")]
    [InlineData("""{"peft_type":"ADALORA","total_step":10,"use_dora":true}""", "does not support DoRA")]
    [InlineData("""{"peft_type":"ADALORA","total_step":10,"rank_pattern":{"a.lora_E":[1,0]}}""", "'rank_pattern.a.lora_E' must be a list of booleans")]
    public void BadConfigsGiveClearErrors(string json, string message)
    {
        var e = Assert.Throws<PeftConfigException>(() => PeftConfigs.Parse(JsonNode.Parse(json)!.AsObject(), "adapter_config.json"));
        Assert.Contains(message, e.Message);
        Assert.StartsWith("adapter_config.json", e.Message);
    }

    [Fact]
    public void FreshAdapterIsANoOpWithRanknumCountedButFrozen()
    {
        using var scope = torch.NewDisposeScope();
        var expected = GoldenData.Expected("llama_adalora");
        using var peft = PeftModel.Create(Llama(), Config(), seed: 1);
        var cfg = (AdaLoraConfig)peft.ActiveConfig;
        Assert.Equal(["q_proj", "v_proj"], cfg.TargetModules!.Items!); // default for llama
        var (trainable, all) = peft.GetNbTrainableParameters();
        Assert.Equal((2712L, 111_580L), (trainable, all)); // all = base + adapters + 4 ranknum scalars
        var layer = ((AdaLoraTuner)peft.Tuner).Layers[0].Layer;
        Assert.False(layer.RankNum("default").requires_grad);
        Assert.Equal(6f, layer.RankNum("default").item<float>());
        using var noGrad = torch.no_grad();
        using var output = peft.Forward(new ForwardArgs { InputIds = expected["input_ids"], AttentionMask = expected["attention_mask"] });
        GoldenData.AssertClose(expected["base_logits"], output.Logits, 1e-5, "E = 0 at init");
    }

    [Fact]
    public void OnlyOneTrainableAdapter()
    {
        using var peft = PeftModel.Create(Llama(), Config());
        var e = Assert.Throws<PeftConfigException>(() => peft.AddAdapter("second", Config()));
        Assert.Contains("only one trainable adapter", e.Message);
        var frozen = Config();
        frozen.InferenceMode = true;
        peft.AddAdapter("second", frozen);
        Assert.Equal("default", ((AdaLoraTuner)peft.Tuner).TrainableAdapter);
    }

    [Fact]
    public void AllocationWithoutGradientsExplainsTheCallOrder()
    {
        using var peft = PeftModel.Create(Llama(), Config());
        var e = Assert.Throws<InvalidOperationException>(() => ((AdaLoraTuner)peft.Tuner).UpdateAndAllocate(0));
        Assert.Contains("after backward() and before zero_grad()", e.Message);
    }

    [Fact]
    public void InferenceAdapterHasNoRegulariserOrAllocator()
    {
        using var peft = GoldenAdapterChecks.Load("llama_adalora", "llama_base");
        var tuner = (AdaLoraTuner)peft.Tuner;
        Assert.Null(((ITrainingAwareTuner)tuner).ExtraLoss());
        Assert.Throws<InvalidOperationException>(() => tuner.UpdateAndAllocate(0));
        var expected = GoldenData.Expected("llama_adalora");
        Assert.Throws<PeftUserException>(() =>
            peft.Forward(new ForwardArgs { InputIds = expected["input_ids"] }, ["default", "__base__"]));
    }

    [Fact]
    public void FixedPhaseReappliesStoredPattern()
    {
        using var scope = torch.NewDisposeScope();
        using var peft = PeftModel.Create(Llama(), Config(), seed: 2);
        var tuner = (AdaLoraTuner)peft.Tuner;
        var cfg = (AdaLoraConfig)peft.ActiveConfig;
        var (path, layer) = tuner.Layers[0];
        using (torch.no_grad()) layer.E("default").fill_(1);
        cfg.RankPattern = new() { [$"{path}.lora_E"] = [true, false, true, false, false, true] };
        var step = tuner.UpdateAndAllocate(4); // > total_step - tfinal
        Assert.Equal(RankAllocationPhase.Fixed, step.Phase);
        Assert.Equal([1f, 0f, 1f, 0f, 0f, 1f], layer.E("default").data<float>().ToArray());
    }

    [Fact]
    public void AllocatedAdapterLoadsAtKeptRanks()
    {
        using var peft = GoldenAdapterChecks.Load("llama_adalora_allocated", "llama_base");
        var ranks = ((AdaLoraTuner)peft.Tuner).Layers.Select(l => l.Layer.Rank("default")).ToArray();
        Assert.Equal([4, 5, 4, 3], ranks);
        Assert.All(((AdaLoraTuner)peft.Tuner).Layers, l => Assert.Equal(6f, l.Layer.RankNum("default").item<float>()));
        Assert.All(peft.AdapterTensors("default"), t => Assert.False(t.Parameter.requires_grad)); // loaded for inference
    }
}
