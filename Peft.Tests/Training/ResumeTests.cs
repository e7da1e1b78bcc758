using Peft.Tests.Support;
using Peft.Training.Data;
using Peft.Training.Training;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Training;

/// <summary>
/// Stop-and-resume equivalence: a run cancelled after step 4 (mid-epoch, with LoRA dropout drawing from the RNG) and
/// resumed from its checkpoint gives the same step losses and final weights as an uninterrupted run.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public class ResumeTests
{
    private static PeftModel NewLora() => PeftModel.Create(TinyModels.Llama(),
        new LoraConfig { R = 4, LoraAlpha = 8, LoraDropout = 0.1, TargetModules = new StringOrList("all-linear", null) }, seed: 5);

    private static TrainingOptions Options(string dir) => new()
    {
        OutputDir = dir, MaxSteps = 6, BatchSize = 4, GradientAccumulationSteps = 2, LearningRate = 5e-3, WarmupSteps = 2,
        Scheduler = SchedulerKind.Linear, WeightDecay = 0.01, MaxGradNorm = 0.5, Seed = 11,
    };

    private static TrainingDataset Data()
    {
        var all = TinyModels.TextBlocks(32);
        // 20 examples = 5 micro-batches = 3 optimizer steps per epoch (2 + 2 + 1): 6 steps cross an epoch boundary.
        return new TrainingDataset(all.Examples.Take(20).ToList(), all.Stats);
    }

    private static Dictionary<string, Tensor> Weights(TrainableModel m) =>
        m.Parameters().ToDictionary(p => p.Name, p => p.Parameter.detach().clone().DetachFromDisposeScope());

    [Fact]
    public void StoppedAndResumedRunEqualsUninterruptedRun()
    {
        using var scope = torch.NewDisposeScope();
        var data = Data();

        using var dirA = new TempDir();
        using var peftA = NewLora();
        var modelA = TrainableModel.ForAdapter(peftA);
        TrainingResult full;
        using (var trainer = new Trainer(modelA, Options(dirA.Path), data))
            full = trainer.Train();
        var weightsA = Weights(modelA);

        using var dirB = new TempDir();
        using var cts = new CancellationTokenSource();
        var events = new List<TrainingEvent>();
        TrainingResult stopped;
        using (var peftB = NewLora())
        using (var trainer = new Trainer(TrainableModel.ForAdapter(peftB), Options(dirB.Path), data, progress: new SyncProgress<TrainingEvent>(e =>
               {
                   events.Add(e);
                   if (e.Kind == TrainingEventKind.Step && e.Step == 4) cts.Cancel();
               })))
            stopped = trainer.Train(cancellation: cts.Token);
        Assert.Equal(TrainingStopReason.Cancelled, stopped.Reason);
        Assert.Equal(4, stopped.GlobalStep);
        Assert.Equal(Path.Combine(dirB.Path, "checkpoint-4"), stopped.LastCheckpoint);
        Assert.Contains(events, e => e.Kind == TrainingEventKind.Cancelled);
        Assert.Null(CheckpointStore.Incomplete(stopped.LastCheckpoint!));

        // A fresh process would start from new objects (new model, adapter re-initialised, then the checkpoint loaded)
        // and another RNG state: the checkpoint must restore it for the dropout masks to match.
        torch.manual_seed(987654);
        using var peftC = NewLora();
        var modelC = TrainableModel.ForAdapter(peftC);
        var resumedSteps = new List<int>();
        TrainingResult resumed;
        using (var trainer = new Trainer(modelC, Options(dirB.Path), data, progress: new SyncProgress<TrainingEvent>(e =>
               {
                   if (e.Kind == TrainingEventKind.Step) resumedSteps.Add(e.Step);
               })))
            resumed = trainer.Train(resumeFrom: dirB.Path);

        Assert.Equal([5, 6], resumedSteps);
        Assert.Equal(TrainingStopReason.Completed, resumed.Reason);
        Assert.Equal(full.StepLosses.Count, resumed.StepLosses.Count);
        for (int i = 0; i < full.StepLosses.Count; i++)
            Assert.True(Math.Abs(full.StepLosses[i] - resumed.StepLosses[i]) <= 1e-6, $"step {i + 1}: {full.StepLosses[i]} vs {resumed.StepLosses[i]}");
        foreach (var (name, w) in Weights(modelC))
            Support.GoldenData.AssertClose(weightsA[name], w, 1e-6, name);
    }
}
