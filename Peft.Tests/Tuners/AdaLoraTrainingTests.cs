using System.Text.Json.Nodes;
using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Training.Tuners.AdaLora;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Tuners;

/// <summary>
/// Reproduces Golden/llama_adalora_train: 4 AdamW steps (lr 1e-2) with the orthogonal regulariser in the loss and
/// update_and_allocate(step) after each optimizer step (init_r 6 → target_r 2, tinit 0, tfinal 1, total_step 4).
/// </summary>
public class AdaLoraTrainingTests
{
    private const string Case = "llama_adalora_train";
    private const double Tol = 1e-4;

    private static Tensor CausalLmLoss(Tensor logits, Tensor labels)
    {
        long len = logits.shape[1], vocab = logits.shape[2];
        var shifted = logits.narrow(1, 0, len - 1).reshape(-1, vocab);
        var targets = labels.narrow(1, 1, len - 1).reshape(-1);
        return nn.functional.cross_entropy(shifted, targets, ignore_index: -100);
    }

    private static void AssertWeights(Dictionary<string, Tensor> expected, string prefix, PeftModel peft, string what)
    {
        foreach (var t in peft.AdapterTensors(PeftModel.DefaultAdapterName))
            GoldenData.AssertClose(expected[$"{prefix}.{t.CheckpointKey}"], t.Parameter, Tol, $"{what}: {t.CheckpointKey}");
    }

    [Fact]
    public void FourStepRunReproducesPeftSchedule()
    {
        using var scope = torch.NewDisposeScope();
        var expected = GoldenData.Expected(Case);
        var info = JsonNode.Parse(File.ReadAllText(Path.Combine(GoldenData.Dir(Case), "rank_patterns.json")))!;
        var model = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
        model.eval(); // as the golden run: no dropout, gradients unaffected
        using var peft = PeftModel.FromPretrained(model, GoldenData.Dir(Case), isTrainable: true);
        var tuner = (AdaLoraTuner)peft.Tuner;
        var config = (AdaLoraConfig)peft.ActiveConfig;
        AssertWeights(expected, "init", peft, "initial weights");

        var trainable = peft.AdapterTensors(PeftModel.DefaultAdapterName).Select(t => t.Parameter).ToList();
        Assert.All(trainable, p => Assert.True(p.requires_grad));
        using var optimizer = torch.optim.AdamW(trainable, lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0);
        var args = new ForwardArgs { InputIds = expected["input_ids"], AttentionMask = expected["attention_mask"] };
        var labels = expected["labels"];
        var stepLosses = expected["step_losses"];
        var ceLosses = expected["step_ce_losses"];

        for (int step = 0; step < 4; step++)
        {
            using var stepScope = torch.NewDisposeScope();
            using var output = peft.Forward(args);
            var ce = CausalLmLoss(output.Logits, labels);
            var loss = ce + ((ITrainingAwareTuner)tuner).ExtraLoss()!;
            Assert.Equal(ceLosses[step].item<float>(), ce.item<float>(), Tol);
            Assert.Equal(stepLosses[step].item<float>(), loss.item<float>(), Tol);
            loss.backward();
            if (step == 0)
            {
                GoldenData.AssertClose(expected["logits"], output.Logits, Tol, "step 0 logits");
                foreach (var t in peft.AdapterTensors(PeftModel.DefaultAdapterName))
                    GoldenData.AssertClose(expected[$"grad.{t.CheckpointKey}"], t.Parameter.grad!, Tol, $"step 0 grad {t.CheckpointKey}");
            }
            optimizer.step();
            var result = tuner.UpdateAndAllocate(step);
            optimizer.zero_grad();

            var golden = info["steps"]![step]!;
            Assert.Equal(golden["budget"]!.GetValue<int>(), result.Budget);
            Assert.Equal(golden["mask_ind"]!.GetValue<bool>(), result.Masked);
            Assert.Equal(step == 3 ? RankAllocationPhase.Final : RankAllocationPhase.Schedule, result.Phase);
            AssertRankPattern(info["rank_pattern_after_step"]![step], config.RankPattern, step);
            AssertWeights(expected, step == 3 ? "final" : $"after_step{step}", peft, $"after step {step}");
        }

        using (torch.no_grad())
        using (var after = peft.Forward(args))
        {
            GoldenData.AssertClose(expected["logits_after_training"], after.Logits, Tol, "logits after training");
            // PEFT's AdaLoraModel.forward adds the regulariser whenever labels are given, so this loss includes it.
            var finalLoss = CausalLmLoss(after.Logits, labels) + ((ITrainingAwareTuner)tuner).ExtraLoss()!;
            Assert.Equal(expected["loss_after_training"].item<float>(), finalLoss.item<float>(), Tol);
        }

        // Saving cuts each module to its kept ranks (one module keeps none: zero-sized tensors); reloading restores it.
        string dir = Path.Combine(Path.GetTempPath(), "peft-adalora-train-" + Guid.NewGuid().ToString("N"));
        try
        {
            peft.SavePretrained(dir);
            GoldenAdapterChecks.AssertSameAdapterFiles(Path.Combine(GoldenData.Dir(Case), "final_adapter"), dir, exactValues: false, tol: Tol);
            var fresh = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
            fresh.eval();
            using var reloaded = PeftModel.FromPretrained(fresh, dir);
            using var noGrad = torch.no_grad();
            using var output = reloaded.Forward(args);
            GoldenData.AssertClose(expected["logits_after_training"], output.Logits, Tol, "reloaded final adapter logits");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>PEFT keeps ".default" in the in-memory keys; ours never carry the adapter name (PEFT strips it on save).</summary>
    private static void AssertRankPattern(JsonNode? golden, Dictionary<string, bool[]>? actual, int step)
    {
        if (golden is null)
        {
            Assert.Null(actual);
            return;
        }
        Assert.NotNull(actual);
        var expected = golden.AsObject().ToDictionary(
            kv => kv.Key.Replace(".default", ""), kv => kv.Value!.AsArray().Select(b => b!.GetValue<bool>()).ToArray());
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (key, keep) in expected) Assert.True(keep.SequenceEqual(actual[key]), $"step {step}: rank pattern of {key}");
    }
}
