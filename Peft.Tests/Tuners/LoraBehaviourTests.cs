using System.Text.Json.Nodes;
using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Tuners;

public class LoraBehaviourTests
{
    private static PretrainedModel Llama() { var m = AutoModel.FromPretrained(GoldenData.Dir("llama_base")); m.eval(); return m; }

    private static ForwardArgs Batch(Dictionary<string, Tensor> e) => new() { InputIds = e["input_ids"], AttentionMask = e["attention_mask"] };

    private static Tensor Run(PeftModel p, ForwardArgs a)
    {
        using var noGrad = torch.no_grad();
        using var o = p.Forward(a);
        return o.Logits.clone();
    }

    [Fact]
    public void DefaultInitIsANoOpAndOnlyAdapterWeightsTrain()
    {
        using var scope = torch.NewDisposeScope();
        var e = GoldenData.Expected("llama_base");
        using var peft = PeftModel.Create(Llama(), new LoraConfig { R = 8, LoraAlpha = 16 }, seed: 3);
        GoldenData.AssertClose(e["logits"], Run(peft, Batch(e)), 1e-5, "fresh LoRA must not change the output");
        var trainable = peft.BaseModel.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        Assert.All(trainable, n => Assert.Matches(@"\.lora_[AB]\.default\.weight$", n));
        Assert.Equal(8, trainable.Count);
        // A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0.
        var (a, b) = ((LoraTuner)peft.Tuner).Layers[0].Layer.Factors("default");
        Assert.True(a.abs().max().item<float>() <= 1 / Math.Sqrt(64) + 1e-6);
        Assert.Equal(0f, b.abs().max().item<float>());

        peft.BaseModel.train();
        using var o = peft.Forward(Batch(e));
        o.Logits.sum().backward();
        Assert.All(peft.BaseModel.named_parameters(), p =>
            Assert.Equal(p.parameter.requires_grad, p.parameter.grad is not null));
    }

    [Theory]
    [InlineData("pissa")]
    [InlineData("pissa_niter_4")]
    [InlineData("olora")]
    public void ResidualInitsKeepTheModelFunctionUnchanged(string init)
    {
        using var scope = torch.NewDisposeScope();
        var e = GoldenData.Expected("llama_base");
        using var peft = PeftModel.Create(Llama(), new LoraConfig { R = 4, LoraAlpha = 8, InitLoraWeights = JsonValue.Create(init) }, seed: 5);
        // W was replaced by W − s·B·A, and the adapter adds s·B·A back: same logits, but a non-zero adapter.
        GoldenData.AssertClose(e["logits"], Run(peft, Batch(e)), 1e-4, init);
        var (_, b) = ((LoraTuner)peft.Tuner).Layers[0].Layer.Factors("default");
        Assert.True(b.abs().max().item<float>() > 1e-3);
        using (peft.DisableAdapters())
            Assert.True(GoldenData.MaxAbsDiff(Run(peft, Batch(e)), e["logits"]) > 1e-3, "base weight should hold the residual");
    }

    [Fact]
    public void GaussianInitUsesStdOneOverR()
    {
        using var scope = torch.NewDisposeScope();
        var model = AutoModel.FromConfig(ModelConfig.Parse("{\"model_type\":\"llama\",\"vocab_size\":32,\"hidden_size\":512,\"intermediate_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":8}"));
        model.InitWeights(0);
        using var peft = PeftModel.Create(model, new LoraConfig { R = 4, TargetModules = StringOrList.Of("q_proj"), InitLoraWeights = JsonValue.Create("gaussian") }, seed: 7);
        var (a, b) = ((LoraTuner)peft.Tuner).Layers[0].Layer.Factors("default");
        Assert.InRange(a.std().item<float>(), 0.24, 0.26);
        Assert.Equal(0f, b.abs().max().item<float>());
    }

    [Fact]
    public void DropoutAppliesOnlyInTrainingAndOnlyOnTheLoraBranch()
    {
        using var scope = torch.NewDisposeScope();
        var e = GoldenData.Expected("llama_lora");
        var cfg = (LoraConfig)PeftConfigs.Load(GoldenData.Dir("llama_lora"));
        using var peft = PeftModel.FromPretrained(Llama(), GoldenData.Dir("llama_lora"));
        // Rebuild the same adapter with dropout 0.5: eval output equals the golden adapted logits.
        cfg.LoraDropout = 0.5;
        cfg.InferenceMode = false;
        using var tmp = new TempDir();
        peft.SavePretrained(tmp.Path);
        File.WriteAllText(Path.Combine(tmp.Path, "adapter_config.json"), cfg.ToJsonString());
        using var withDropout = PeftModel.FromPretrained(Llama(), tmp.Path, isTrainable: true);
        GoldenData.AssertClose(e["logits"], Run(withDropout, Batch(e)), 1e-4, "eval mode must not drop");
        withDropout.BaseModel.train();
        var t1 = Run(withDropout, Batch(e));
        Assert.True(GoldenData.MaxAbsDiff(t1, e["logits"]) > 1e-3, "training mode must drop on the LoRA branch");
        using (withDropout.DisableAdapters())
            GoldenData.AssertClose(e["base_logits"], Run(withDropout, Batch(e)), 1e-4, "base path has no dropout");
    }

    [Fact]
    public void BiasAllAndLoraOnlyTrainAndSaveBiases()
    {
        using var scope = torch.NewDisposeScope();
        var gpt2 = AutoModel.FromPretrained(GoldenData.Dir("gpt2_base"));
        using var all = PeftModel.Create(gpt2, new LoraConfig { R = 4, Bias = "all" });
        var keys = all.AdapterTensors("default").Select(t => t.CheckpointKey).ToList();
        Assert.Contains("base_model.model.transformer.h.0.attn.c_attn.base_layer.bias", keys);
        Assert.Contains("base_model.model.transformer.h.0.mlp.c_fc.bias", keys);
        Assert.Contains("base_model.model.transformer.ln_f.bias", keys);
        var (t, _) = all.GetNbTrainableParameters();
        long biases = gpt2.UniqueNamedParameters().Where(p => p.Name.EndsWith(".bias")).Sum(p => p.Param.numel());
        Assert.Equal(2 * (4 * 64 + 192 * 4) + biases, t);

        using var only = PeftModel.Create(AutoModel.FromPretrained(GoldenData.Dir("gpt2_base")), new LoraConfig { R = 4, Bias = "lora_only" });
        var onlyKeys = only.AdapterTensors("default").Select(k => k.CheckpointKey).Where(k => k.EndsWith(".bias")).ToList();
        Assert.Equal(["base_model.model.transformer.h.0.attn.c_attn.base_layer.bias", "base_model.model.transformer.h.1.attn.c_attn.base_layer.bias"], onlyKeys);
    }

    [Fact]
    public void ModulesToSaveTrainsACopyAndSavesItUnderTheOriginalKey()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        var e = GoldenData.Expected("llama_base");
        using (var peft = PeftModel.Create(Llama(), new LoraConfig { R = 4, ModulesToSave = ["lm_head"] }, seed: 1))
        {
            var (t, a) = peft.GetNbTrainableParameters();
            // LoRA on q/v (1,792 as in the golden llama_lora) + a trainable copy of lm_head (128·64); the frozen
            // original head still counts in "all", as in PEFT.
            Assert.Equal(1792 + 8192, t);
            Assert.Equal(108864 + 1792 + 8192, a);
            var head = peft.AdapterTensors("default").Single(x => x.CheckpointKey == "base_model.model.lm_head.weight");
            using (torch.no_grad()) head.Parameter.add_(0.5f);
            Assert.True(GoldenData.MaxAbsDiff(Run(peft, Batch(e)), e["logits"]) > 1e-2, "the trained copy must be used");
            using (peft.DisableAdapters())
                GoldenData.AssertClose(e["logits"], Run(peft, Batch(e)), 1e-5, "original head untouched");
            peft.SavePretrained(tmp.Path);
        }
        using var reloaded = PeftModel.FromPretrained(Llama(), tmp.Path);
        var expected = Safetensors.Load(Path.Combine(tmp.Path, "adapter_model.safetensors"))["base_model.model.lm_head.weight"];
        GoldenData.AssertClose(expected, reloaded.AdapterTensors("default").Single(x => x.CheckpointKey.EndsWith("lm_head.weight")).Parameter, 0, "reloaded head");
        var merged = reloaded.MergeAndUnload();
        Assert.DoesNotContain(merged.named_parameters(), p => p.name.Contains("modules_to_save"));
    }

    [Fact]
    public void EmbeddingLoraMatchesItsMergedWeights()
    {
        using var scope = torch.NewDisposeScope();
        var e = GoldenData.Expected("llama_base");
        using var peft = PeftModel.Create(Llama(), new LoraConfig { R = 4, TargetModules = StringOrList.Of("embed_tokens"), InitLoraWeights = JsonValue.Create(false) }, seed: 2);
        var keys = peft.AdapterTensors("default").Select(t => (t.CheckpointKey, t.Parameter.shape)).ToList();
        Assert.Equal([("base_model.model.model.embed_tokens.lora_embedding_A", new long[] { 4, 128 }), ("base_model.model.model.embed_tokens.lora_embedding_B", new long[] { 64, 4 })],
            keys.Select(k => (k.CheckpointKey, k.shape)).ToList(), new KeyShapeComparer());
        var adapted = Run(peft, Batch(e));
        Assert.True(GoldenData.MaxAbsDiff(adapted, e["logits"]) > 1e-3);
        peft.MergeAdapter();
        GoldenData.AssertClose(adapted, Run(peft, Batch(e)), 1e-4, "merged embedding");
        peft.UnmergeAdapter();
        GoldenData.AssertClose(adapted, Run(peft, Batch(e)), 1e-4, "unmerged embedding");
    }

    private sealed class KeyShapeComparer : IEqualityComparer<(string, long[])>
    {
        public bool Equals((string, long[]) x, (string, long[]) y) => x.Item1 == y.Item1 && x.Item2.SequenceEqual(y.Item2);
        public int GetHashCode((string, long[]) obj) => obj.Item1.GetHashCode();
    }

    [Fact]
    public void AdaptersCanBeAddedSwitchedDeletedAndSavedInSubfolders()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        var e = GoldenData.Expected("llama_lora_mixed_batch");
        using var peft = PeftModel.FromPretrained(Llama(), Path.Combine(GoldenData.Dir("llama_lora_mixed_batch"), "adapter_a"));
        peft.LoadAdapter(Path.Combine(GoldenData.Dir("llama_lora_mixed_batch"), "adapter_b"), "other");
        Assert.Equal(["default"], peft.ActiveAdapters);
        GoldenData.AssertClose(e["logits_adapter_a"], Run(peft, Batch(e)), 1e-4, "default active");
        // Only the active adapter is trainable-eligible; inactive ones stay frozen.
        peft.SetAdapter("other");
        GoldenData.AssertClose(e["logits_adapter_b"], Run(peft, Batch(e)), 1e-4, "other active");
        peft.SavePretrained(tmp.Path);
        Assert.True(File.Exists(Path.Combine(tmp.Path, "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(tmp.Path, "other", "adapter_config.json")));
        Assert.Throws<ArgumentException>(() => peft.AddAdapter("other", new LoraConfig()));
        peft.DeleteAdapter("other");
        Assert.Equal(["default"], peft.ActiveAdapters);
        GoldenData.AssertClose(e["logits_adapter_a"], Run(peft, Batch(e)), 1e-4, "after delete");
        Assert.DoesNotContain(peft.BaseModel.named_parameters(), p => p.name.Contains(".other."));
        var wrongType = Assert.Throws<ArgumentException>(() => peft.SetAdapter("missing"));
        Assert.Contains("'missing' not found", wrongType.Message);
    }

    [Fact]
    public void SafeMergeRefusesNonFiniteWeights()
    {
        using var scope = torch.NewDisposeScope();
        using var peft = PeftModel.FromPretrained(Llama(), GoldenData.Dir("llama_lora"));
        using (torch.no_grad()) peft.AdapterTensors("default").First(t => t.CheckpointKey.EndsWith("lora_B.weight")).Parameter.fill_(float.NaN);
        var err = Assert.Throws<InvalidOperationException>(() => peft.MergeAdapter(safeMerge: true));
        Assert.Contains("NaN", err.Message);
    }

    [Fact]
    public void AdapterForAnotherBaseIsRejectedWithTheTensorName()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        // A llama adapter whose lora_A was trained for a wider model.
        var tensors = Safetensors.Load(Path.Combine(GoldenData.Dir("llama_lora"), "adapter_model.safetensors"));
        string key = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
        tensors[key] = torch.zeros(4, 96);
        Safetensors.Save(Path.Combine(tmp.Path, "adapter_model.safetensors"), tensors);
        File.Copy(Path.Combine(GoldenData.Dir("llama_lora"), "adapter_config.json"), Path.Combine(tmp.Path, "adapter_config.json"));
        var model = Llama();
        var err = Assert.Throws<AdapterLoadException>(() => PeftModel.FromPretrained(model, tmp.Path));
        Assert.Contains(key, err.Message);
        Assert.Contains("[4, 96]", err.Message);
        // A failed load leaves the base model without stray adapter layers.
        Assert.DoesNotContain(model.named_parameters(), p => p.name.Contains("lora_"));
        model.Dispose();
    }

    [Fact]
    public void AutoPeftModelResolvesTheBaseAgainstAModelRoot()
    {
        using var scope = torch.NewDisposeScope();
        var e = GoldenData.Expected("llama_lora");
        using var peft = AutoPeftModel.FromPretrained(GoldenData.Dir("llama_lora"), [GoldenData.Root]);
        peft.BaseModel.eval();
        GoldenData.AssertClose(e["logits"], Run(peft, Batch(e)), 1e-4, "auto-loaded adapter");
        using var tmp = new TempDir();
        File.WriteAllText(tmp.Sub("adapter_config.json"), "{\"peft_type\":\"LORA\",\"base_model_name_or_path\":\"org/missing-model\"}");
        var err = Assert.Throws<PeftUserException>(() => AutoPeftModel.FromPretrained(tmp.Path, [GoldenData.Root]));
        Assert.Contains("org/missing-model", err.Message);
    }
}
