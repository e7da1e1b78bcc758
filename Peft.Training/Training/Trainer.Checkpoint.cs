using Peft.Training.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Training;

public sealed partial class Trainer
{
    public const string OptimizerFileName = "optimizer.safetensors";
    public const string RngFileName = "rng_state.safetensors";

    /// <summary>
    /// Writes <c>checkpoint-{step}</c>: weights (adapter or full model), optimizer state, the run's generator state and
    /// trainer_state.json (data position, schedule step, history). The schedule needs no file of its own: its
    /// factor is a function of the global step.
    /// </summary>
    private string SaveCheckpoint()
    {
        string path = CheckpointStore.Write(_o.OutputDir, _state.GlobalStep, _state, dir =>
        {
            _model.Save(dir);
            var state = _optimizer.StateTensors().ToList();
            try
            {
                var meta = new Dictionary<string, string> { ["format"] = "pt", ["optimizer"] = _o.Optimizer.ToString() };
                Safetensors.Save(Path.Combine(dir, OptimizerFileName), state, meta);
            }
            finally
            {
                foreach (var kv in state) kv.Value.Dispose();
            }
            using var rng = _generator.get_state();
            Safetensors.Save(Path.Combine(dir, RngFileName), [new("cpu", rng)]);
        });
        if (_o.SaveTotalLimit is { } keep) CheckpointStore.Prune(_o.OutputDir, keep);
        Emit(TrainingEventKind.Checkpoint, path: path);
        return path;
    }

    /// <summary>Loads a checkpoint so the run continues exactly where it stopped (same data order, RNG and moments).</summary>
    private void Restore(string resumeFrom)
    {
        string dir = CheckpointStore.Resolve(resumeFrom)
            ?? throw new PeftUserException($"{resumeFrom}: no complete checkpoint to resume from", UserErrorKind.Invalid);
        var state = TrainerState.Parse(File.ReadAllText(Path.Combine(dir, CheckpointStore.StateFileName)), dir);
        void Same<T>(string field, T saved, T now)
        {
            if (!EqualityComparer<T>.Default.Equals(saved, now))
                throw new PeftUserException($"cannot resume from {dir}: {field} was {saved} and is now {now}; the data order would differ", UserErrorKind.Invalid);
        }
        Same("the number of training examples", state.NumExamples, _train.Count);
        Same("per_device_train_batch_size", state.BatchSize, _o.BatchSize);
        Same("gradient_accumulation_steps", state.GradientAccumulationSteps, _o.GradientAccumulationSteps);
        Same("seed", state.Seed, _o.Seed);
        Same("shuffle", state.Shuffle, _o.Shuffle);
        Same("optimizer", state.Optimizer, _o.Optimizer.ToString());

        _model.Load(dir);
        var optState = Safetensors.Load(Path.Combine(dir, OptimizerFileName));
        try { _optimizer.LoadState(optState); }
        finally { foreach (var t in optState.Values) t.Dispose(); }
        var rng = Safetensors.Load(Path.Combine(dir, RngFileName));
        try { _generator.set_state(rng["cpu"]); }
        finally { foreach (var t in rng.Values) t.Dispose(); }
        state.Files.Clear();
        _state = state;
        _resumedFrom = dir;
    }
}
