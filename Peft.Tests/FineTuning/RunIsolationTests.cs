using Peft.Tests.Support;
using Peft.Tests.Training;
using Peft.Training.Data;
using Peft.Training.Models;
using Peft.Training.Training;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.FineTuning;

/// <summary>
/// A run owns its randomness (adapter init, dropout, shuffling) and does not change the configs it is given, so a
/// server can run jobs side by side.
/// </summary>
public class RunIsolationTests
{
    private sealed record Outcome(IReadOnlyList<double> Losses, Dictionary<string, byte[]> Weights);

    /// <summary>LoRA with dropout on, shuffled data: every random draw of a run matters to its result.</summary>
    private static Outcome Train(int seed, double dropout)
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        var all = TinyModels.TextBlocks(32);
        var data = new TrainingDataset(all.Examples.Take(12).ToList(), all.Stats);
        using var peft = PeftModel.Create(TinyModels.Llama(), new LoraConfig { R = 4, LoraAlpha = 8, LoraDropout = dropout }, seed: seed);
        var model = TrainableModel.ForAdapter(peft);
        var o = new TrainingOptions { OutputDir = dir.Path, MaxSteps = 4, BatchSize = 4, LearningRate = 1e-2, Seed = seed, GradientCheckpointing = seed % 2 == 1 };
        using var trainer = new Trainer(model, o, data);
        var result = trainer.Train();
        var weights = model.Parameters().ToDictionary(p => p.Name, p => p.Parameter.detach().cpu().bytes.ToArray());
        return new Outcome(result.StepLosses, weights);
    }

    private static void AssertIdentical(Outcome expected, Outcome actual)
    {
        Assert.Equal(expected.Losses, actual.Losses);   // exact: bit-identical doubles
        Assert.Equal(expected.Weights.Keys, actual.Weights.Keys);
        foreach (var (name, bytes) in expected.Weights) Assert.True(bytes.AsSpan().SequenceEqual(actual.Weights[name]), $"{name} differs");
    }

    [Fact]
    public void TwoRunsOnTwoThreadsEqualEachRunAlone()
    {
        var aloneA = Train(seed: 3, dropout: 0.3);
        var aloneB = Train(seed: 4, dropout: 0.3);
        // The seed reaches dropout: another seed gives other losses (so the comparison below can fail).
        Assert.NotEqual(aloneA.Losses, aloneB.Losses);
        // Touching torch's global generator between runs changes nothing: a run never reads it.
        torch.manual_seed(12345);
        _ = torch.rand(1000);
        Outcome? a = null, b = null;
        var ta = new Thread(() => a = Train(seed: 3, dropout: 0.3));
        var tb = new Thread(() => b = Train(seed: 4, dropout: 0.3));
        ta.Start();
        tb.Start();
        ta.Join();
        tb.Join();
        AssertIdentical(aloneA, a!);
        AssertIdentical(aloneB, b!);
    }

    [Fact]
    public void OneConfigServesTwoModelFamiliesUnchanged()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        // No target_modules: each family gets its own defaults (q_proj/v_proj for Llama, c_attn for GPT-2).
        var config = new LoraConfig { R = 2, LoraAlpha = 4 };
        var allLinear = new LoraConfig { R = 2, LoraAlpha = 4, TargetModules = "all-linear" };
        string before = config.ToJsonString(), beforeAll = allLinear.ToJsonString();
        var llamaModel = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
        var gpt2Model = AutoModel.FromPretrained(GoldenData.Dir("gpt2_base"));
        using var llama = PeftModel.Create(llamaModel, config, seed: 0);
        using var gpt2 = PeftModel.Create(gpt2Model, config, seed: 0);
        Assert.Equal(["q_proj", "v_proj"], ((LoraConfig)llama.ActiveConfig).TargetModules!.Items!.Order());
        Assert.Equal(["c_attn"], ((LoraConfig)gpt2.ActiveConfig).TargetModules!.Items!);
        Assert.True(((LoraConfig)gpt2.ActiveConfig).FanInFanOut);   // GPT-2's Conv1D, set on the model's copy only
        llama.AddAdapter("wide", allLinear);
        gpt2.AddAdapter("wide", allLinear);
        Assert.Contains("down_proj", ((LoraConfig)llama.Configs["wide"]).TargetModules!.Items!);
        Assert.Contains("c_fc", ((LoraConfig)gpt2.Configs["wide"]).TargetModules!.Items!);
        // Saving writes inference_mode=true without flipping the live config.
        gpt2.SavePretrained(dir.Path);
        Assert.True(PeftConfigs.Load(dir.Path).InferenceMode);
        Assert.False(gpt2.ActiveConfig.InferenceMode);
        Assert.Equal(before, config.ToJsonString());
        Assert.Equal(beforeAll, allLinear.ToJsonString());
        Assert.False(config.FanInFanOut);
    }
}
