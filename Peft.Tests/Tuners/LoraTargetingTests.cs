using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;

namespace Peft.Tests.Tuners;

/// <summary>Which modules a LoraConfig wraps (PEFT's check_target_module_exists rules).</summary>
public class LoraTargetingTests
{
    private static List<string> Targets(LoraConfig config, string baseName = "llama_base")
    {
        using var peft = PeftModel.Create(AutoModel.FromPretrained(GoldenData.Dir(baseName)), config);
        return ((LoraTuner)peft.Tuner).Layers.Select(l => l.Path).ToList();
    }

    [Fact]
    public void ListMatchesExactKeysOrDottedSuffixes()
    {
        var t = Targets(new LoraConfig { TargetModules = StringOrList.Of("q_proj", "mlp.down_proj") });
        Assert.Equal(["model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj", "model.layers.1.self_attn.q_proj", "model.layers.1.mlp.down_proj"], t);
        // "proj" is not a dotted suffix of "q_proj": no partial-name matches.
        var err = Assert.Throws<PeftConfigException>(() => Targets(new LoraConfig { TargetModules = StringOrList.Of("proj") }));
        Assert.Contains("not found in the base model", err.Message);
    }

    [Fact]
    public void StringIsAFullMatchRegex()
    {
        var t = Targets(new LoraConfig { TargetModules = @".*\.1\.self_attn\.(k|v)_proj" });
        Assert.Equal(["model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.v_proj"], t);
        // A regex that only matches part of a key matches nothing.
        Assert.Throws<PeftConfigException>(() => Targets(new LoraConfig { TargetModules = "q_proj" }));
    }

    [Fact]
    public void ExcludeModulesAndLayersToTransformFilter()
    {
        var t = Targets(new LoraConfig { TargetModules = StringOrList.Of("q_proj", "v_proj"), ExcludeModules = StringOrList.Of("model.layers.0.self_attn.v_proj") });
        Assert.Equal(["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"], t);
        var layer1 = Targets(new LoraConfig { TargetModules = StringOrList.Of("q_proj"), LayersToTransform = [1], LayersPattern = "layers" });
        Assert.Equal(["model.layers.1.self_attn.q_proj"], layer1);
        var gpt2 = Targets(new LoraConfig { TargetModules = StringOrList.Of("c_attn"), LayersToTransform = [0] }, "gpt2_base");
        Assert.Equal(["transformer.h.0.attn.c_attn"], gpt2);
    }

    [Fact]
    public void AllLinearTargetsEveryLinearButTheHead()
    {
        var t = Targets(new LoraConfig { TargetModules = "all-linear" });
        Assert.Equal(14, t.Count);
        Assert.DoesNotContain("lm_head", t);
    }

    [Fact]
    public void DefaultTargetsComeFromTheModelType()
    {
        Assert.Equal(["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"], Targets(new LoraConfig(), "gpt2_base"));
        Assert.Equal(4, Targets(new LoraConfig(), "llama_base").Count);
    }

    [Fact]
    public void RankAndAlphaPatternsOverridePerModule()
    {
        var config = new LoraConfig
        {
            R = 4, LoraAlpha = 8, TargetModules = StringOrList.Of("q_proj", "v_proj"),
            RankPattern = new() { ["layers.1.self_attn.q_proj"] = 2 },
            AlphaPattern = new() { ["v_proj"] = 2 },
        };
        using var peft = PeftModel.Create(AutoModel.FromPretrained(GoldenData.Dir("llama_base")), config);
        var layers = ((LoraTuner)peft.Tuner).Layers.ToDictionary(l => l.Path, l => l.Layer.Settings["default"]);
        Assert.Equal(2, layers["model.layers.1.self_attn.q_proj"].R);
        Assert.Equal(4, layers["model.layers.0.self_attn.q_proj"].R);
        Assert.Equal(4.0, layers["model.layers.1.self_attn.q_proj"].Scaling);
        Assert.Equal(0.5, layers["model.layers.0.self_attn.v_proj"].Scaling);
        Assert.Equal([2, 64], peft.AdapterTensors("default").First(t => t.CheckpointKey.Contains("layers.1.self_attn.q_proj.lora_A")).Parameter.shape);
    }

    [Fact]
    public void UnsupportedLeafTargetIsAClearError()
    {
        var err = Assert.Throws<PeftConfigException>(() => Targets(new LoraConfig { TargetModules = StringOrList.Of("input_layernorm") }));
        Assert.Contains("model.layers.0.input_layernorm", err.Message);
        Assert.Contains("not supported", err.Message);
    }

    [Theory]
    [InlineData("{\"peft_type\":\"LORA\",\"r\":0}", "'r' must be a positive integer")]
    [InlineData("{\"peft_type\":\"LORA\",\"lora_dropout\":1.5}", "'lora_dropout' must be in [0, 1)")]
    [InlineData("{\"peft_type\":\"LORA\",\"bias\":\"some\"}", "'bias' must be")]
    [InlineData("{\"peft_type\":\"LORA\",\"init_lora_weights\":\"magic\"}", "'init_lora_weights' \"magic\" is not supported")]
    [InlineData("{\"peft_type\":\"LORA\",\"target_modules\":\".*q\",\"layers_to_transform\":[0]}", "cannot be used when 'target_modules' is a regex")]
    [InlineData("{\"peft_type\":\"LORA\",\"r\":\"eight\"}", "'r' must be an integer")]
    [InlineData("{\"peft_type\":\"NOPE\"}", "peft_type 'NOPE' is not supported")]
    [InlineData("{\"r\":8}", "'peft_type' is missing")]
    public void BadConfigValuesNameTheField(string json, string message)
    {
        using var tmp = new TempDir();
        string file = tmp.Sub("adapter_config.json");
        File.WriteAllText(file, json);
        var err = Assert.Throws<PeftConfigException>(() => PeftConfigs.Load(file));
        Assert.Contains(message, err.Message);
        Assert.Contains(file, err.Message);
    }

    [Fact]
    public void UnknownKeysFromNewerPeftAreIgnoredAndFieldsRoundTrip()
    {
        using var tmp = new TempDir();
        string file = tmp.Sub("adapter_config.json");
        File.WriteAllText(file, "{\"peft_type\":\"LORA\",\"r\":16,\"lora_alpha\":32,\"target_modules\":[\"q_proj\"],\"use_qalora\":false,\"some_future_field\":{\"x\":1},\"task_type\":\"CAUSAL_LM\"}");
        var cfg = (LoraConfig)PeftConfigs.Load(file);
        Assert.Equal(16, cfg.R);
        Assert.Equal(32, cfg.LoraAlpha);
        string saved = cfg.ToJsonString();
        Assert.DoesNotContain("some_future_field", saved);
        Assert.StartsWith("{\n  \"alpha_pattern\": {},\n  \"auto_mapping\": null,", saved);
        var keys = System.Text.Json.Nodes.JsonNode.Parse(saved)!.AsObject().Select(k => k.Key).ToList();
        Assert.Equal(keys.Order(StringComparer.Ordinal), keys);
    }

    /// <summary>
    /// Target matching skips adapter containers without walking them: the modules it sees are exactly the model's
    /// modules minus those under lora_A / lora_B / modules_to_save ..., in the same order, however many adapters and
    /// head copies the model carries, and a later adapter wraps the same layers as the first.
    /// </summary>
    [Fact]
    public void TargetsAreMatchedOnTheBaseModulesHoweverManyAdaptersAreAttached()
    {
        using var peft = PeftModel.Create(AutoModel.FromPretrained(GoldenData.Dir("llama_base")),
            new LoraConfig { R = 4, TargetModules = "all-linear", ModulesToSave = ["lm_head"] }, "first");
        for (int i = 0; i < 3; i++) peft.AddAdapter($"more{i}", new LoraConfig { R = 2, TargetModules = StringOrList.Of("q_proj", "v_proj"), ModulesToSave = ["lm_head"] });
        var expected = peft.BaseModel.named_modules().Select(m => m.name).Where(n => !TargetMatching.IsAdapterInternal(n)).ToList();
        Assert.Contains("model.layers.1.self_attn.q_proj.lora_A.more2", peft.BaseModel.named_modules().Select(m => m.name));
        Assert.Equal(expected, BaseModules.Of(peft.BaseModel).Select(m => m.Path).ToList());
        var layers = ((LoraTuner)peft.Tuner).Layers;
        Assert.Equal(14, layers.Count);
        Assert.Equal(4, layers.Count(l => l.Layer.Has("more2")));
        Assert.All(layers.Where(l => l.Path.EndsWith("q_proj") || l.Path.EndsWith("v_proj")), l => Assert.True(l.Layer.Has("more0")));
    }

    /// <summary>A serving model freezes each adapter it attaches without walking the whole model; nothing trains.</summary>
    [Fact]
    public void AServingModelsAttachedAdaptersAreFrozen()
    {
        using var peft = PeftModel.ForServing(AutoModel.FromPretrained(GoldenData.Dir("llama_base")), "LORA");
        for (int i = 0; i < 3; i++)
        {
            var cfg = new LoraConfig { R = 4, TargetModules = StringOrList.Of("q_proj", "v_proj"), LoraBias = i == 1 };
            peft.AddAdapter($"a{i}", cfg);
        }
        peft.AddAdapter("ia3", new Ia3Config());
        Assert.NotEmpty(peft.AdapterTensors("a1"));
        Assert.Equal(0, peft.GetNbTrainableParameters().Trainable);
        Assert.All(peft.BaseModel.parameters(), p => Assert.False(p.requires_grad));
    }
}
