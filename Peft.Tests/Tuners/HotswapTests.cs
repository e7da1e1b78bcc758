using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Tuners;

public class HotswapTests
{
    private static readonly string Mixed = GoldenData.Dir("llama_lora_mixed_batch");

    private static PeftModel LoadA()
    {
        var model = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
        model.eval();
        return PeftModel.FromPretrained(model, Path.Combine(Mixed, "adapter_a"));
    }

    private static Tensor Logits(PeftModel peft, Dictionary<string, Tensor> e)
    {
        using var noGrad = torch.no_grad();
        using var o = peft.Forward(new ForwardArgs { InputIds = e["input_ids"], AttentionMask = e["attention_mask"] });
        return o.Logits.clone();
    }

    [Fact]
    public void SameRankSwapIsInPlaceAndGivesTheNewAdaptersOutput()
    {
        using var scope = torch.NewDisposeScope();
        using var peft = LoadA();
        var e = GoldenData.Expected("llama_lora_mixed_batch");
        GoldenData.AssertClose(e["logits_adapter_a"], Logits(peft, e), 1e-4, "before swap");
        var before = peft.AdapterTensors("default").Select(t => t.Parameter.Handle).ToList();
        peft.HotswapAdapter(Path.Combine(Mixed, "adapter_b"), "default");
        GoldenData.AssertClose(e["logits_adapter_b"], Logits(peft, e), 1e-4, "after swap");
        Assert.Equal(before, peft.AdapterTensors("default").Select(t => t.Parameter.Handle).ToList());
    }

    [Fact]
    public void PaddedAdapterKeepsItsOutputAndSwapsSmallerRanksInPlace()
    {
        using var scope = torch.NewDisposeScope();
        using var peft = LoadA();
        var e = GoldenData.Expected("llama_lora_mixed_batch");
        peft.PrepareForHotswap("default", 16);
        Assert.All(((LoraTuner)peft.Tuner).Layers, l => Assert.Equal(16, l.Layer.StoredRank("default")));
        GoldenData.AssertClose(e["logits_adapter_a"], Logits(peft, e), 1e-5, "padding changed the output");
        var before = peft.AdapterTensors("default").Select(t => t.Parameter.Handle).ToList();
        peft.HotswapAdapter(GoldenData.Dir("llama_lora"), "default");
        var expected = GoldenData.Expected("llama_lora");
        GoldenData.AssertClose(expected["logits"], Logits(peft, e), 1e-4, "rank-4 adapter swapped into rank-16 storage");
        Assert.Equal(before, peft.AdapterTensors("default").Select(t => t.Parameter.Handle).ToList());
    }

    [Fact]
    public void ModulesMissingFromTheNewAdapterAreZeroedAndExtraModulesAreRefused()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        var e = GoldenData.Expected("llama_lora_mixed_batch");
        // An adapter on q_proj only, with non-zero B so it has an effect.
        using (var small = PeftModel.Create(AutoModel.FromPretrained(GoldenData.Dir("llama_base")),
                   new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = StringOrList.Of("q_proj"), InitLoraWeights = System.Text.Json.Nodes.JsonValue.Create(false) }, seed: 1))
            small.SavePretrained(tmp.Sub("q_only"));
        using var peft = LoadA();
        peft.HotswapAdapter(tmp.Sub("q_only"), "default");
        var swapped = Logits(peft, e);
        using var reference = PeftModel.FromPretrained(AutoModel.FromPretrained(GoldenData.Dir("llama_base")), tmp.Sub("q_only"));
        reference.BaseModel.eval();
        GoldenData.AssertClose(Logits(reference, e), swapped, 1e-4, "v_proj must be zero-filled after the swap");

        using var qOnly = PeftModel.FromPretrained(AutoModel.FromPretrained(GoldenData.Dir("llama_base")), tmp.Sub("q_only"));
        var err = Assert.Throws<PeftConfigException>(() => qOnly.HotswapAdapter(Path.Combine(Mixed, "adapter_b"), "default"));
        Assert.Contains("v_proj", err.Message);
    }
}
