using Peft.Tests.Support;
using Peft.Training.Data;
using Peft.Training.Models;
using Peft.Training.Training;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Training;

/// <summary>Trainer mechanics: accumulation, schedules, LoRA+ groups, events, hooks, early stopping.</summary>
public class TrainerTests
{
    private static TrainingDataset Data(int n)
    {
        var all = TinyModels.TextBlocks(32);
        return new TrainingDataset(all.Examples.Take(n).ToList(), all.Stats);
    }

    private static PeftModel NewLora() => PeftModel.Create(TinyModels.Llama(), new LoraConfig { R = 4, LoraAlpha = 8 }, seed: 3);

    [Fact]
    public void GradientAccumulationEqualsOneBigBatch()
    {
        using var scope = torch.NewDisposeScope();
        var data = Data(8);
        // Uneven label counts per micro-batch, so a per-micro-batch mean would differ from the big batch's.
        var ragged = new TrainingDataset(data.Examples.Select((e, i) => e with { Labels = e.Labels.Select((l, j) => j < 2 * i ? -100L : l).ToArray() }).ToList(), data.Stats);
        IReadOnlyList<double> Run(int batch, int accum, out Dictionary<string, Tensor> weights)
        {
            using var dir = new TempDir();
            using var peft = NewLora();
            var model = TrainableModel.ForAdapter(peft);
            var o = new TrainingOptions { OutputDir = dir.Path, MaxSteps = 2, BatchSize = batch, GradientAccumulationSteps = accum, LearningRate = 1e-2, Shuffle = false, MaxGradNorm = 0 };
            using var trainer = new Trainer(model, o, ragged);
            var r = trainer.Train();
            weights = model.Parameters().ToDictionary(p => p.Name, p => p.Parameter.detach().clone());
            return r.StepLosses;
        }
        var big = Run(8, 1, out var wBig);
        var acc = Run(2, 4, out var wAcc);
        for (int i = 0; i < 2; i++) Assert.Equal(big[i], acc[i], 5);
        foreach (var (k, w) in wBig) Support.GoldenData.AssertClose(w, wAcc[k], 1e-5, k);
    }

    [Theory]
    [InlineData(SchedulerKind.Linear, new[] { 0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0 })]
    [InlineData(SchedulerKind.Cosine, new[] { 0.0, 0.5, 1.0, 0.8535533905932737, 0.5, 0.14644660940672627, 0.0 })]
    [InlineData(SchedulerKind.Constant, new[] { 0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0 })]
    public void SchedulesMatchTransformers(SchedulerKind kind, double[] expected)
    {
        var s = new LrSchedule(kind, WarmupSteps: 2, TotalSteps: 6);
        for (int step = 0; step < expected.Length; step++) Assert.Equal(expected[step], s.Factor(step), 12);
    }

    [Fact]
    public void StepEventsCarryLossLrGradNormAndTiming()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        using var peft = NewLora();
        var events = new List<TrainingEvent>();
        var o = new TrainingOptions { OutputDir = dir.Path, MaxSteps = 4, BatchSize = 4, LearningRate = 1e-3, WarmupSteps = 2, EvalEvery = 2, SaveEvery = 3, Shuffle = false };
        var model = TrainableModel.ForAdapter(peft);
        // Step 1's loss is the untouched model's mean token loss on the first batch (computed here independently).
        double firstBatchLoss = Evaluation.Run(model, new DataCollator(TaskType.CausalLM, 0), Data(4), 4).Metrics["eval_loss"];
        using var trainer = new Trainer(model, o, Data(12), Data(4), progress: new SyncProgress<TrainingEvent>(events.Add));
        var result = trainer.Train();
        var steps = events.Where(e => e.Kind == TrainingEventKind.Step).ToList();
        Assert.Equal([1, 2, 3, 4], steps.Select(e => e.Step));
        Assert.Equal(firstBatchLoss, steps[0].Loss!.Value, 5);
        Assert.Equal(result.StepLosses, steps.Select(e => e.Loss!.Value));
        Assert.Equal([0.0, 5e-4, 1e-3, 5e-4], steps.Select(e => Math.Round(e.LearningRate!.Value, 10)));
        Assert.All(steps, e => Assert.True(e.GradNorm > 0 && e.TokensPerSecond > 0 && e.Eta is not null && e.TotalSteps == 4));
        var json = System.Text.Json.Nodes.JsonNode.Parse(steps[0].ToJson())!;
        Assert.Equal("step", json["type"]!.GetValue<string>());
        Assert.Equal(1, json["step"]!.GetValue<int>());
        Assert.Equal(steps[0].Loss, json["loss"]!.GetValue<double>());
        Assert.Equal([2, 4], events.Where(e => e.Kind == TrainingEventKind.Evaluation).Select(e => e.Step));
        Assert.Contains("eval_perplexity", events.First(e => e.Kind == TrainingEventKind.Evaluation).Metrics!.Keys);
        Assert.Equal([3, 4], events.Where(e => e.Kind == TrainingEventKind.Checkpoint).Select(e => e.Step));
        Assert.Equal(TrainingEventKind.Started, events[0].Kind);
        Assert.Equal(TrainingEventKind.Completed, events[^1].Kind);
    }

    [Fact]
    public void LoraPlusTrainsBAtAHigherRate()
    {
        using var dir = new TempDir();
        using var peft = NewLora();
        var o = new TrainingOptions { OutputDir = dir.Path, LearningRate = 1e-4, LoraPlusLrRatio = 16, WeightDecay = 0.1 };
        using var trainer = new Trainer(TrainableModel.ForAdapter(peft), o, Data(4));
        var groups = trainer.Optimizer.Groups.ToDictionary(g => g.Name);
        Assert.All(groups["groupA"].Parameters, p => Assert.Contains(".lora_A.", p.Name));
        Assert.All(groups["groupB"].Parameters, p => Assert.Contains(".lora_B.", p.Name));
        Assert.Equal(1e-4, groups["groupA"].LearningRate, 12);
        Assert.Equal(16e-4, groups["groupB"].LearningRate, 12);
        Assert.Equal(0.1, groups["groupB"].WeightDecay);
    }

    /// <summary>AdaLoRA-like hooks: a regulariser on the adapter weights, and a step callback that reads the gradients.</summary>
    private sealed class FakeHooks(TrainableModel model) : ITrainingAwareTuner
    {
        public List<(int Step, bool HadGrads)> Calls { get; } = new();
        public Tensor? ExtraLoss() => torch.stack(model.Parameters().Select(p => p.Parameter.pow(2).sum()).ToList()).sum() * 0.5;
        public void OnOptimizerStep(int globalStep) => Calls.Add((globalStep, model.Parameters().All(p => p.Parameter.grad is not null)));
    }

    [Fact]
    public void TunerHooksAddTheirLossAndSeeGradientsAfterEachStep()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        using var peft = NewLora();
        var model = TrainableModel.ForAdapter(peft);
        var hooks = new FakeHooks(model);
        model.HooksOverride = hooks;
        var data = Data(4);
        double extraBefore = hooks.ExtraLoss()!.ToDouble();
        double ceBefore;
        using (torch.no_grad())
        using (var batch = new DataCollator(TaskType.CausalLM, 0).Collate(data.Examples))
        using (var output = model.Forward(batch.ToForwardArgs()))
            ceBefore = Losses.CausalLm(output.Logits, batch.Labels).Mean().ToDouble();
        var o = new TrainingOptions { OutputDir = dir.Path, MaxSteps = 3, BatchSize = 2, GradientAccumulationSteps = 2, LearningRate = 1e-3, Shuffle = false };
        using var trainer = new Trainer(model, o, data);
        var result = trainer.Train();
        Assert.Equal(ceBefore + extraBefore, result.StepLosses[0], 4);
        Assert.Equal([(0, true), (1, true), (2, true)], hooks.Calls);
        Assert.All(model.Parameters(), p => Assert.Null(p.Parameter.grad));
    }

    [Fact]
    public void EarlyStoppingStopsWhenEvalLossStopsImproving()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        using var peft = NewLora();
        var events = new List<TrainingEvent>();
        // A learning rate of zero: the eval loss never improves after the first evaluation.
        var o = new TrainingOptions { OutputDir = dir.Path, MaxSteps = 20, BatchSize = 4, LearningRate = 1e-12, EvalEvery = 1, EarlyStoppingPatience = 2, EarlyStoppingThreshold = 1e-3 };
        using var trainer = new Trainer(TrainableModel.ForAdapter(peft), o, Data(8), Data(4), progress: new SyncProgress<TrainingEvent>(events.Add));
        var result = trainer.Train();
        Assert.Equal(TrainingStopReason.EarlyStopped, result.Reason);
        Assert.Equal(3, result.GlobalStep);
        Assert.Contains(events, e => e.Kind == TrainingEventKind.EarlyStopped);
        Assert.True(File.Exists(Path.Combine(dir.Path, "adapter_model.safetensors")));
    }

    [Fact]
    public void SgdMatchesItsFormula()
    {
        using var scope = torch.NewDisposeScope();
        var p = new TorchSharp.Modules.Parameter(torch.tensor(new float[] { 1, -2 }));
        var sgd = new Sgd([new ParamGroup("g", [new NamedParameter("p", p)], 0.1, 0.5)], momentum: 0.9);
        p.grad = torch.tensor(new float[] { 1, 1 });
        sgd.Step(1.0); // d = g + 0.5 p = [1.5, 0]; buf = d; p -= 0.1 d
        Assert.Equal([0.85f, -2f], p.data<float>().ToArray());
        sgd.Step(1.0); // d = [1 + 0.425, 1 - 1] = [1.425, 0]; buf = 0.9 [1.5, 0] + d = [2.775, 0]
        Assert.Equal(0.85f - 0.2775f, p.data<float>()[0], 5);
    }
}
