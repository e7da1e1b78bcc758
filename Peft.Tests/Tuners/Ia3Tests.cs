using System.Text.Json.Nodes;
using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Ia3;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Tuners;

public class Ia3Tests
{
    private static PretrainedModel Llama()
    {
        var m = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
        m.eval();
        return m;
    }

    private static ForwardArgs Batch(Dictionary<string, Tensor> expected) =>
        new() { InputIds = expected["input_ids"], AttentionMask = expected["attention_mask"] };

    [Fact]
    public void DefaultsComeFromModelType()
    {
        using var peft = PeftModel.Create(Llama(), new Ia3Config());
        var cfg = (Ia3Config)peft.ActiveConfig;
        Assert.Equal(["k_proj", "v_proj", "down_proj"], cfg.TargetModules!.Items!);
        Assert.Equal(["down_proj"], cfg.FeedforwardModules!.Items!);
        var layers = ((Ia3Tuner)peft.Tuner).Layers;
        Assert.Equal(6, layers.Count);
        Assert.All(layers, l => Assert.Equal(l.Path.EndsWith("down_proj"), l.Layer.IsFeedforward));
    }

    [Fact]
    public void Qwen2HasNoDefaultsInPeft010()
    {
        using var model = AutoModel.FromPretrained(GoldenData.Dir("qwen2_base"));
        var e = Assert.Throws<PeftConfigException>(() => PeftModel.Create(model, new Ia3Config()));
        Assert.Contains("qwen2", e.Message);
        var e2 = Assert.Throws<PeftConfigException>(() => PeftModel.Create(model, new Ia3Config { TargetModules = StringOrList.Of("k_proj") }));
        Assert.Contains("feedforward_modules", e2.Message);
    }

    [Fact]
    public void FeedforwardListMatchesBySuffixWithoutDotBoundary()
    {
        var cfg = new Ia3Config { FeedforwardModules = StringOrList.Of("output.dense") };
        Assert.True(cfg.IsFeedforward("encoder.layer.0.attention.output.dense"));
        Assert.True(cfg.IsFeedforward("encoder.layer.0.output.dense"));
        Assert.True(new Ia3Config { FeedforwardModules = StringOrList.Of("proj") }.IsFeedforward("mlp.down_proj"));
        var regex = new Ia3Config { FeedforwardModules = ".*mlp\\.down_proj" };
        Assert.True(regex.IsFeedforward("model.layers.0.mlp.down_proj"));
        Assert.False(regex.IsFeedforward("model.layers.0.mlp.down_proj.x"));
    }

    [Fact]
    public void FeedforwardMustBeSubsetOfTargets()
    {
        var json = JsonNode.Parse("""{"peft_type":"IA3","target_modules":["k_proj","v_proj"],"feedforward_modules":["down_proj"]}""")!.AsObject();
        var e = Assert.Throws<PeftConfigException>(() => PeftConfigs.Parse(json, "cfg.json"));
        Assert.Contains("subset", e.Message);
        Assert.Contains("down_proj", e.Message);
        // A regex on either side is not checked (PEFT only compares sets).
        new Ia3Config { TargetModules = ".*proj", FeedforwardModules = StringOrList.Of("down_proj") }.Validate();
    }

    [Fact]
    public void FreshAdapterIsANoOpAndRandomInitIsNot()
    {
        using var scope = torch.NewDisposeScope();
        var expected = GoldenData.Expected("llama_ia3");
        using var noGrad = torch.no_grad();
        using (var peft = PeftModel.Create(Llama(), new Ia3Config()))
        using (var output = peft.Forward(Batch(expected)))
            GoldenData.AssertClose(expected["base_logits"], output.Logits, 1e-5, "ones-initialised IA3");
        using (var peft = PeftModel.Create(Llama(), new Ia3Config { InitIa3Weights = false }, seed: 3))
        using (var output = peft.Forward(Batch(expected)))
            Assert.True(GoldenData.MaxAbsDiff(expected["base_logits"], output.Logits) > 1e-2);
    }

    [Fact]
    public void MixedBatchIsRejected()
    {
        using var scope = torch.NewDisposeScope();
        var expected = GoldenData.Expected("llama_ia3");
        using var peft = GoldenAdapterChecks.Load("llama_ia3", "llama_base");
        var e = Assert.Throws<PeftUserException>(() => peft.Forward(Batch(expected), ["default", "__base__"]));
        Assert.Contains("mixed-batch", e.Message);
    }

    [Fact]
    public void ActiveAdaptersMultiplyAndWeightedAdapterIsLinear()
    {
        using var scope = torch.NewDisposeScope();
        var expected = GoldenData.Expected("llama_ia3");
        using var peft = GoldenAdapterChecks.Load("llama_ia3", "llama_base");
        peft.AddAdapter("other", new Ia3Config { InitIa3Weights = false, InferenceMode = true });
        var tuner = (Ia3Tuner)peft.Tuner;

        // Both active ≡ one adapter whose vectors are the element-wise products.
        peft.SetAdapters(["default", "other"]);
        using var noGrad = torch.no_grad();
        var both = peft.Forward(Batch(expected)).Logits;
        tuner.AddWeightedAdapter(["default"], [1.0], "product");
        foreach (var (_, layer) in tuner.Layers) layer.Vector("product").mul_(layer.Vector("other"));
        peft.SetAdapter("product");
        GoldenData.AssertClose(both, peft.Forward(Batch(expected)).Logits, 1e-5, "product adapter");

        tuner.AddWeightedAdapter(["default", "other"], [0.25, -2.0], "mix");
        foreach (var (_, layer) in tuner.Layers)
            GoldenData.AssertClose(layer.Vector("default") * 0.25 - layer.Vector("other") * 2.0, layer.Vector("mix"), 1e-6, "l_new = Σ w·l");
        Assert.False(tuner.Layers[0].Layer.Vector("mix").requires_grad);
        Assert.Throws<ArgumentException>(() => tuner.AddWeightedAdapter(["default"], [1.0], "mix"));
        Assert.Throws<ArgumentException>(() => tuner.AddWeightedAdapter(["nope"], [1.0], "x"));
    }

    [Fact]
    public void UnmergeRestoresWeightsAndBias()
    {
        using var scope = torch.NewDisposeScope();
        using var peft = GoldenAdapterChecks.Load("gpt2_ia3", "gpt2_base");
        var (path, layer) = ((Ia3Tuner)peft.Tuner).Layers.First(l => !l.Layer.IsFeedforward);
        var w = layer.Host.weight.clone();
        var b = layer.Host.bias!.clone();
        peft.MergeAdapter();
        Assert.True(GoldenData.MaxAbsDiff(w, layer.Host.weight) > 1e-3, $"{path} merged");
        Assert.True(GoldenData.MaxAbsDiff(b, layer.Host.bias!) > 1e-3, $"{path} bias scaled");
        peft.UnmergeAdapter();
        GoldenData.AssertClose(w, layer.Host.weight, 1e-5, "weight after unmerge");
        GoldenData.AssertClose(b, layer.Host.bias!, 1e-5, "bias after unmerge");
    }
}
