using Peft.Tests.Support;
using Peft.Training.Data;
using Peft.Training.Models;
using Peft.Training.Training;
using TorchSharp;

namespace Peft.Tests.Training;

/// <summary>
/// A process killed while writing a checkpoint leaves a temp folder (or, copied by hand, a folder without a valid
/// manifest); resume must skip those and use the newest complete checkpoint. Also covers full fine-tuning.
/// </summary>
public class CheckpointCrashTests
{
    private static TrainingOptions Options(string dir, int maxSteps) => new()
    {
        OutputDir = dir, MaxSteps = maxSteps, BatchSize = 4, LearningRate = 1e-3, SaveEvery = 2, Seed = 5,
    };

    private static TrainingDataset Data()
    {
        var all = TinyModels.TextBlocks(32);
        return new TrainingDataset(all.Examples.Take(16).ToList(), all.Stats);
    }

    private static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }

    [Fact]
    public void ResumePicksTheLastCompleteCheckpointAfterACrash()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        var data = Data();
        using (var model = TinyModels.Llama())
        using (var trainer = new Trainer(TrainableModel.ForFullFineTune(model), Options(dir.Path, 4), data))
            Assert.Equal(4, trainer.Train().GlobalStep);
        string good = Path.Combine(dir.Path, "checkpoint-4");
        Assert.True(File.Exists(Path.Combine(good, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(good, Trainer.OptimizerFileName)));

        // Killed mid-write: the temp folder of checkpoint 6 holds everything but the manifest.
        string temp = Path.Combine(dir.Path, ".tmp-checkpoint-6-0123456789abcdef");
        CopyDir(good, temp);
        File.Delete(Path.Combine(temp, CheckpointStore.StateFileName));
        // A checkpoint folder with weights but no trainer_state.json (e.g. a partial copy).
        string noState = Path.Combine(dir.Path, "checkpoint-8");
        Directory.CreateDirectory(noState);
        File.Copy(Path.Combine(good, "model.safetensors"), Path.Combine(noState, "model.safetensors"));
        // A checkpoint whose weights were cut short: the manifest's sizes no longer match.
        string truncated = Path.Combine(dir.Path, "checkpoint-7");
        CopyDir(good, truncated);
        using (var fs = new FileStream(Path.Combine(truncated, "model.safetensors"), FileMode.Open)) fs.SetLength(fs.Length / 2);

        Assert.Equal(good, CheckpointStore.Resolve(dir.Path));
        Assert.Throws<PeftUserException>(() => CheckpointStore.Resolve(noState));
        Assert.Contains("manifest", Assert.Throws<PeftUserException>(() => CheckpointStore.Resolve(truncated)).Message);

        var steps = new List<int>();
        using (var model = TinyModels.Llama(seed: 99)) // other initial weights: the checkpoint must overwrite them
        using (var trainer = new Trainer(TrainableModel.ForFullFineTune(model), Options(dir.Path, 6), data,
                   progress: new SyncProgress<TrainingEvent>(e => { if (e.Kind == TrainingEventKind.Step) steps.Add(e.Step); })))
        {
            var result = trainer.Train(resumeFrom: dir.Path);
            Assert.Equal(6, result.GlobalStep);
            Assert.Equal(6, result.StepLosses.Count);
        }
        Assert.Equal([5, 6], steps);
        Assert.False(Directory.Exists(temp), "the interrupted temp folder is cleaned up");
        Assert.Null(CheckpointStore.Incomplete(Path.Combine(dir.Path, "checkpoint-6")));
        // The final full model is a normal HF folder.
        using var reloaded = AutoModel.FromPretrained(dir.Path);
        Assert.Equal(TaskType.CausalLM, reloaded.Task);
    }

    [Fact]
    public void AFailedCheckpointWriteLeavesNothingBehind()
    {
        using var dir = new TempDir();
        Assert.Throws<IOException>(() => CheckpointStore.Write(dir.Path, 3, new TrainerState(), d =>
        {
            File.WriteAllText(Path.Combine(d, "adapter_model.safetensors"), "partial");
            throw new IOException("disk full");
        }));
        Assert.Empty(Directory.GetDirectories(dir.Path));
        Assert.Null(CheckpointStore.Resolve(dir.Path));
    }
}
