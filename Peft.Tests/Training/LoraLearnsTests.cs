using Peft.Tests.Support;
using System.Diagnostics;
using Peft.Training.Data;
using Peft.Training.Training;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using Xunit.Abstractions;

namespace Peft.Tests.Training;

/// <summary>End to end on real text: LoRA on a randomly initialised tiny Llama must lower held-out loss.</summary>
public class LoraLearnsTests(ITestOutputHelper output)
{
    [Fact]
    public void LoraOnTinyLlamaLowersValidationLossOnEnglishText()
    {
        using var scope = torch.NewDisposeScope();
        using var tok = TinyModels.Tokenizer();
        var options = new DatasetOptions { MaxLength = 64 };
        var train = DatasetBuilder.Load(TinyModels.Text("english-train.txt"), tok, options);
        var valid = DatasetBuilder.Load(TinyModels.Text("english-valid.txt"), tok, options);
        var model = TinyModels.Llama();
        var config = new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = StringOrList.Of(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]) };
        using var peft = PeftModel.Create(model, config, seed: 1);
        using var dir = new TempDir();
        var events = new List<TrainingEvent>();
        var trainOptions = new TrainingOptions
        {
            OutputDir = dir.Path, MaxSteps = 40, BatchSize = 8, LearningRate = 1e-2, WarmupSteps = 4,
            Scheduler = SchedulerKind.Cosine, EvalEvery = 20, Seed = 3,
        };
        using var trainer = new Trainer(TrainableModel.ForAdapter(peft), trainOptions, train, valid, progress: new SyncProgress<TrainingEvent>(events.Add));
        double before = trainer.Evaluate(valid)["eval_loss"];
        var sw = Stopwatch.StartNew();
        var result = trainer.Train();
        sw.Stop();
        double after = result.FinalMetrics!["eval_loss"];
        output.WriteLine($"{train.Count} train blocks, {valid.Count} valid blocks; eval_loss {before:F4} -> {after:F4} " +
            $"({100 * (before - after) / before:F1}% lower); {result.GlobalStep} steps in {sw.Elapsed.TotalSeconds:F1} s = {result.GlobalStep / sw.Elapsed.TotalSeconds:F1} steps/s");
        foreach (var e in events.Where(e => e.Kind == TrainingEventKind.Evaluation)) output.WriteLine(e.ToJson());
        Assert.True(after <= 0.85 * before, $"validation loss fell only from {before:F4} to {after:F4}");
    }
}
