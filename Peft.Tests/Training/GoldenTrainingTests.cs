using Peft.Tests.Support;
using Peft.Training.Data;
using Peft.Training.Models;
using Peft.Training.Training;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Training;

/// <summary>
/// LoRA training against PEFT 0.10 + torch.optim.AdamW (Golden/*_lora_train): loss and gradients of the first batch,
/// then three AdamW steps (lr 1e-2) through the trainer: step losses, weights after each step, loss after training.
/// </summary>
public class GoldenTrainingTests
{
    public static TheoryData<string, string> Cases => new()
    {
        { "llama_lora_train", "llama_base" },
        { "gpt2_lora_train", "gpt2_base" },
    };

    /// <summary>The case's adapter on its base; <paramref name="baseDir"/> replaces the base folder (a dropout-free copy).</summary>
    internal static PeftModel LoadTrainable(string caseName, string baseName, string? baseDir = null)
    {
        var model = AutoModel.FromPretrained(baseDir ?? GoldenData.Dir(baseName));
        model.eval();
        return PeftModel.FromPretrained(model, GoldenData.Dir(caseName), isTrainable: true);
    }

    /// <summary>Relative closeness: max |a − e| ≤ tol · max(1, max |e|).</summary>
    internal static void AssertRelClose(Tensor expected, Tensor actual, double tol, string what)
    {
        using var scale = expected.abs().max();
        double bound = tol * Math.Max(1.0, scale.item<float>());
        double diff = GoldenData.MaxAbsDiff(actual, expected);
        Assert.True(diff <= bound, $"{what}: max |diff| = {diff:E3} > {bound:E2}");
    }

    private static Dictionary<string, Tensor> Gradients(PeftModel peft, Dictionary<string, Tensor> expected, bool checkpointing, out double loss)
    {
        peft.BaseModel.GradientCheckpointing = checkpointing;
        using var output = peft.Forward(new ForwardArgs { InputIds = expected["input_ids"], AttentionMask = expected["attention_mask"] });
        var l = Losses.CausalLm(output.Logits, expected["labels"]).Mean();
        l.backward();
        loss = l.item<float>();
        var grads = new Dictionary<string, Tensor>();
        foreach (var t in peft.AdapterTensors(peft.ActiveAdapter))
        {
            grads[t.CheckpointKey] = t.Parameter.grad!.clone();
            t.Parameter.grad = null;
        }
        peft.BaseModel.GradientCheckpointing = false;
        return grads;
    }

    [Theory, MemberData(nameof(Cases))]
    public void LossAndGradientsMatchPeft(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var peft = LoadTrainable(caseName, baseName);
        var expected = GoldenData.Expected(caseName);
        var grads = Gradients(peft, expected, checkpointing: false, out double loss);
        Assert.Equal(expected["loss"].item<float>(), loss, 4);
        Assert.Equal(expected.Keys.Count(k => k.StartsWith("grad.", StringComparison.Ordinal)), grads.Count);
        foreach (var (key, g) in grads) AssertRelClose(expected["grad." + key], g, 1e-4, "grad." + key);
    }

    [Theory, MemberData(nameof(Cases))]
    public void GradientCheckpointingGivesTheSameGradients(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var peft = LoadTrainable(caseName, baseName);
        var expected = GoldenData.Expected(caseName);
        var plain = Gradients(peft, expected, checkpointing: false, out double loss);
        var recomputed = Gradients(peft, expected, checkpointing: true, out double loss2);
        Assert.Equal(loss, loss2, 6);
        foreach (var (key, g) in plain) GoldenData.AssertClose(g, recomputed[key], 1e-5, "checkpointed grad." + key);
    }

    [Theory, MemberData(nameof(Cases))]
    public void ThreeAdamWStepsMatchTorch(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        // The trainer runs in training mode; the reference trained without dropout.
        using var peft = LoadTrainable(caseName, baseName, GoldenData.ZeroDropoutCopy(baseName, dir.Sub("base")));
        var expected = GoldenData.Expected(caseName);
        var ids = expected["input_ids"].data<long>().ToArray();
        var mask = expected["attention_mask"].data<long>().ToArray();
        var labels = expected["labels"].data<long>().ToArray();
        int len = (int)expected["input_ids"].shape[1];
        var rows = Enumerable.Range(0, 2).Select(i => new Example(ids[(i * len)..((i + 1) * len)], labels[(i * len)..((i + 1) * len)], mask[(i * len)..((i + 1) * len)])).ToList();
        var data = new TrainingDataset(rows, new DatasetStats());
        var snapshots = new Dictionary<int, Dictionary<string, Tensor>>();
        var model = TrainableModel.ForAdapter(peft);
        var options = new TrainingOptions
        {
            OutputDir = dir.Sub("out"), MaxSteps = 3, BatchSize = 2, LearningRate = 1e-2, WeightDecay = 0, MaxGradNorm = 0,
            Scheduler = SchedulerKind.Constant, Shuffle = false,
        };
        var progress = new SyncProgress<TrainingEvent>(e =>
        {
            if (e.Kind != TrainingEventKind.Step) return;
            snapshots[e.Step] = model.Parameters().ToDictionary(p => p.Name, p => p.Parameter.detach().clone());
        });
        using var trainer = new Trainer(model, options, data, progress: progress);
        var result = trainer.Train();

        var stepLosses = expected["step_losses"].data<float>().ToArray();
        Assert.Equal(3, result.StepLosses.Count);
        for (int i = 0; i < 3; i++) Assert.True(Math.Abs(stepLosses[i] - result.StepLosses[i]) <= 1e-4 * stepLosses[i], $"step {i + 1} loss {result.StepLosses[i]} vs {stepLosses[i]}");
        foreach (var (prefix, step) in new[] { ("after_step1", 1), ("after_step2", 2), ("final", 3) })
            foreach (var (key, value) in snapshots[step])
                AssertRelClose(expected[$"{prefix}.{key}"], value, 1e-4, $"{prefix}.{key}");
        var after = trainer.Evaluate(data)["eval_loss"];
        Assert.Equal(expected["loss_after_training"].item<float>(), after, 4);
        Assert.True(File.Exists(Path.Combine(dir.Sub("out"), "adapter_model.safetensors")));
    }
}
