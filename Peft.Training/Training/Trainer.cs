using System.Diagnostics;
using Peft.Training.Data;
using Peft.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Training;

public enum TrainingStopReason { Completed, EarlyStopped, Cancelled }

/// <summary>Outcome of <see cref="Trainer.Train"/>.</summary>
/// <param name="StepLosses">Loss of every optimizer step from step 1 (steps before a resume come from the checkpoint's history).</param>
/// <param name="FinalMetrics">The last evaluation's metrics, if there was evaluation data.</param>
public sealed record TrainingResult(
    TrainingStopReason Reason,
    int GlobalStep,
    IReadOnlyList<double> StepLosses,
    IReadOnlyDictionary<string, double>? FinalMetrics,
    string? LastCheckpoint,
    string OutputDir);

/// <summary>
/// Fine-tunes an adapter (or, with <see cref="TrainableModel.ForFullFineTune"/>, a whole model) like transformers'
/// <c>Trainer</c>: AdamW/SGD with warmup and a linear/cosine/constant schedule, gradient accumulation (the loss is
/// divided by the label count of the whole accumulation window, so k batches of b equal one batch of k·b), clipping,
/// periodic evaluation and early stopping, atomic checkpoints with exact resume, progress events and cancellation.
/// Tuner hooks run automatically: <see cref="Tuners.ITrainingAwareTuner.ExtraLoss"/> is added to the loss and
/// <see cref="Tuners.ITrainingAwareTuner.OnOptimizerStep"/> gets the 0-based step after each update, before the
/// gradients are cleared.
/// </summary>
public sealed partial class Trainer : IDisposable
{
    private readonly TrainableModel _model;
    private readonly TrainingOptions _o;
    private readonly TrainingDataset _train;
    private readonly TrainingDataset? _eval;
    private readonly DataCollator _collator;
    private readonly IProgress<TrainingEvent>? _progress;
    private readonly IReadOnlyList<NamedParameter> _params;
    private readonly Optimizer _optimizer;
    private readonly LrSchedule _schedule;
    private readonly int _batchesPerEpoch;
    private TrainerState _state = new();
    private readonly Stopwatch _clock = new();
    private long _tokensThisRun;
    private int _stepsThisRun;
    private string? _resumedFrom;
    private readonly Generator _generator;

    public Trainer(TrainableModel model, TrainingOptions options, TrainingDataset train, TrainingDataset? eval = null,
        DataCollator? collator = null, IProgress<TrainingEvent>? progress = null)
    {
        options.Validate();
        if (train.Count == 0) throw new PeftUserException("the training set is empty");
        _model = model;
        _o = options;
        _train = train;
        _eval = eval;
        _collator = collator ?? new DataCollator(model.Model.Task, 0);
        _progress = progress;
        _params = model.Parameters();
        if (_params.Count == 0) throw new PeftUserException("nothing to train: no parameter requires grad");
        _optimizer = BuildOptimizer();
        _batchesPerEpoch = (train.Count + options.BatchSize - 1) / options.BatchSize;
        TotalSteps = PlannedSteps(options, train.Count);
        int warmup = options.WarmupSteps > 0 ? options.WarmupSteps : (int)Math.Ceiling(options.WarmupRatio * TotalSteps);
        _schedule = new LrSchedule(options.Scheduler, warmup, TotalSteps);
        _generator = new Generator((ulong)options.Seed, model.Model.Device);
    }

    /// <summary>
    /// The run's own random generator, seeded with <see cref="TrainingOptions.Seed"/>: while <see cref="Train"/> runs,
    /// the model's dropout (<see cref="PretrainedModel.Dropout"/>) draws from it, so runs on other threads neither
    /// disturb nor are disturbed by this one, and torch's global generator is never touched. Checkpoints save its state.
    /// </summary>
    public Generator Generator => _generator;

    public int TotalSteps { get; }

    /// <summary>Optimizer steps a run will take: max_steps, or epochs × ceil(batches / accumulation).</summary>
    public static int PlannedSteps(TrainingOptions options, int trainExamples)
    {
        int batches = (trainExamples + options.BatchSize - 1) / options.BatchSize;
        int stepsPerEpoch = (batches + options.GradientAccumulationSteps - 1) / options.GradientAccumulationSteps;
        return options.MaxSteps > 0 ? options.MaxSteps : Math.Max(1, (int)Math.Ceiling(options.Epochs * stepsPerEpoch));
    }
    public Optimizer Optimizer => _optimizer;
    public TrainerState State => _state;

    /// <summary>
    /// Trains to the end (or early stop / cancellation, which write a checkpoint and return normally).
    /// <paramref name="resumeFrom"/>: a checkpoint folder, or an output folder whose newest complete checkpoint is used.
    /// </summary>
    public TrainingResult Train(string? resumeFrom = null, CancellationToken cancellation = default)
    {
        CheckpointStore.CleanUp(_o.OutputDir);
        bool previousCheckpointing = _model.Model.GradientCheckpointing;
        _model.Model.GradientCheckpointing = _o.GradientCheckpointing;
        var previousGenerator = _model.Model.Dropout.Generator;
        _model.Model.Dropout.Generator = _generator;
        try
        {
            if (resumeFrom is not null) Restore(resumeFrom);
            else Start();
            return Loop(cancellation);
        }
        finally
        {
            _model.Model.GradientCheckpointing = previousCheckpointing;
            _model.Model.Dropout.Generator = previousGenerator;
        }
    }

    private void Start()
    {
        using (var fresh = new Generator((ulong)_o.Seed, _model.Model.Device))
        using (var state = fresh.get_state())
            _generator.set_state(state);
        _state = new TrainerState
        {
            TotalSteps = TotalSteps,
            NumExamples = _train.Count,
            BatchSize = _o.BatchSize,
            GradientAccumulationSteps = _o.GradientAccumulationSteps,
            Seed = _o.Seed,
            Shuffle = _o.Shuffle,
            Optimizer = _o.Optimizer.ToString(),
        };
    }

    private TrainingResult Loop(CancellationToken cancellation)
    {
        _state.TotalSteps = TotalSteps;
        _model.Root.train();
        _clock.Restart();
        _tokensThisRun = 0;
        _stepsThisRun = 0;
        string from = _resumedFrom is null ? "" : $"; resumed from {_resumedFrom} at step {_state.GlobalStep}";
        Emit(TrainingEventKind.Started, message: $"{_model.Describe()}; {_train.Count} examples, {TotalSteps} steps{from}");
        string? lastCheckpoint = null;
        int savedAt = -1, evaluatedAt = -1;
        IReadOnlyDictionary<string, double>? metrics = null;
        var reason = TrainingStopReason.Completed;
        int[] order = EpochOrder(_state.Epoch);
        while (_state.GlobalStep < TotalSteps)
        {
            if (cancellation.IsCancellationRequested) { reason = TrainingStopReason.Cancelled; break; }
            if (_state.BatchInEpoch >= _batchesPerEpoch)
            {
                _state.Epoch++;
                _state.BatchInEpoch = 0;
                order = EpochOrder(_state.Epoch);
            }
            int count = Math.Min(_o.GradientAccumulationSteps, _batchesPerEpoch - _state.BatchInEpoch);
            var (loss, gradNorm, lr) = OptimizerStep(order, _state.BatchInEpoch, count);
            _state.BatchInEpoch += count;
            _state.GlobalStep++;
            _stepsThisRun++;
            _state.LogHistory.Add(new() { ["step"] = _state.GlobalStep, ["epoch"] = FractionalEpoch, ["loss"] = loss, ["learning_rate"] = lr, ["grad_norm"] = gradNorm });
            EmitStep(loss, lr, gradNorm);
            // glibc keeps libtorch's freed blocks in its heap; give them back after every step (see NativeHeap).
            NativeHeap.Trim();

            bool last = _state.GlobalStep == TotalSteps;
            if (_eval is not null && _o.EvalEvery > 0 && _state.GlobalStep % _o.EvalEvery == 0 && !last)
            {
                metrics = EvaluateAndLog();
                evaluatedAt = _state.GlobalStep;
                if (ShouldStopEarly(metrics["eval_loss"])) { reason = TrainingStopReason.EarlyStopped; break; }
            }
            if (_o.SaveEvery > 0 && _state.GlobalStep % _o.SaveEvery == 0 && !last)
            {
                lastCheckpoint = SaveCheckpoint();
                savedAt = _state.GlobalStep;
            }
        }
        if (reason != TrainingStopReason.Cancelled && _eval is not null && evaluatedAt != _state.GlobalStep)
            metrics = EvaluateAndLog();
        if (savedAt != _state.GlobalStep) lastCheckpoint = SaveCheckpoint();
        if (reason == TrainingStopReason.Cancelled)
            Emit(TrainingEventKind.Cancelled, path: lastCheckpoint, message: "cancelled; resume from the checkpoint to continue");
        else
        {
            _model.Save(_o.OutputDir);
            if (reason == TrainingStopReason.EarlyStopped)
                Emit(TrainingEventKind.EarlyStopped, metrics: metrics, message: $"no eval_loss improvement in {_state.EvalsWithoutImprovement} evaluations");
        }
        Emit(TrainingEventKind.Completed, metrics: metrics, path: _o.OutputDir, message: reason.ToString().ToLowerInvariant());
        var losses = _state.LogHistory.Where(h => h.ContainsKey("loss")).OrderBy(h => h["step"]).Select(h => h["loss"]).ToList();
        return new TrainingResult(reason, _state.GlobalStep, losses, metrics, lastCheckpoint, _o.OutputDir);
    }

    private int[] EpochOrder(int epoch) =>
        _o.Shuffle ? SeededShuffle.Permutation(_train.Count, (ulong)_o.Seed, epoch + 1) : Enumerable.Range(0, _train.Count).ToArray();

    private double FractionalEpoch => _state.Epoch + (double)_state.BatchInEpoch / _batchesPerEpoch;

    private IReadOnlyDictionary<string, double> EvaluateAndLog()
    {
        var metrics = Evaluate(_eval!);
        var entry = new Dictionary<string, double> { ["step"] = _state.GlobalStep, ["epoch"] = FractionalEpoch };
        foreach (var (k, v) in metrics) entry[k] = v;
        _state.LogHistory.Add(entry);
        Emit(TrainingEventKind.Evaluation, metrics: metrics);
        return metrics;
    }

    private bool ShouldStopEarly(double evalLoss)
    {
        if (_state.BestEvalLoss is not { } best || evalLoss < best - _o.EarlyStoppingThreshold)
        {
            _state.BestEvalLoss = evalLoss;
            _state.EvalsWithoutImprovement = 0;
            return false;
        }
        _state.EvalsWithoutImprovement++;
        return _o.EarlyStoppingPatience is { } patience && _state.EvalsWithoutImprovement >= patience;
    }

    private void EmitStep(double loss, double lr, double gradNorm)
    {
        double secs = _clock.Elapsed.TotalSeconds;
        TimeSpan? eta = _stepsThisRun > 0 ? TimeSpan.FromSeconds(secs / _stepsThisRun * (TotalSteps - _state.GlobalStep)) : null;
        _progress?.Report(new TrainingEvent
        {
            Kind = TrainingEventKind.Step,
            Step = _state.GlobalStep,
            TotalSteps = TotalSteps,
            Epoch = FractionalEpoch,
            Loss = loss,
            LearningRate = lr,
            GradNorm = gradNorm,
            TokensPerSecond = secs > 0 ? _tokensThisRun / secs : null,
            Elapsed = _clock.Elapsed,
            Eta = eta,
        });
    }

    private void Emit(TrainingEventKind kind, IReadOnlyDictionary<string, double>? metrics = null, string? path = null, string? message = null) =>
        _progress?.Report(new TrainingEvent
        {
            Kind = kind,
            Step = _state.GlobalStep,
            TotalSteps = TotalSteps,
            Epoch = FractionalEpoch,
            Elapsed = _clock.Elapsed,
            Metrics = metrics,
            Path = path,
            Message = message,
        });

    private Optimizer BuildOptimizer()
    {
        var groups = new List<ParamGroup>();
        void Add(string name, IEnumerable<NamedParameter> ps, double lr, double wd)
        {
            var list = ps.ToList();
            if (list.Count > 0) groups.Add(new ParamGroup(name, list, lr, wd));
        }
        double lr0 = _o.LearningRate, wd = _o.WeightDecay;
        if (_o.LoraPlusLrRatio is { } ratio)
        {
            // PEFT's create_loraplus_optimizer: B factors (and 1-D tensors) at lr·ratio, embedding factors at their own lr.
            var emb = _params.Where(p => TrainableModel.IsLoraEmbedding(p.Name)).ToList();
            var rest = _params.Except(emb).ToList();
            bool IsB(NamedParameter p) => TrainableModel.IsLoraB(p.Name) || p.Parameter.dim() == 1;
            Add("groupA", rest.Where(p => !IsB(p) && _model.Decays(p)), lr0, wd);
            Add("groupA_no_decay", rest.Where(p => !IsB(p) && !_model.Decays(p)), lr0, 0);
            Add("groupB", rest.Where(p => IsB(p) && _model.Decays(p)), lr0 * ratio, wd);
            Add("groupB_no_decay", rest.Where(p => IsB(p) && !_model.Decays(p)), lr0 * ratio, 0);
            Add("embedding", emb, _o.LoraPlusLrEmbedding, wd);
        }
        else
        {
            Add("decay", _params.Where(_model.Decays), lr0, wd);
            Add("no_decay", _params.Where(p => !_model.Decays(p)), lr0, 0);
        }
        return _o.Optimizer == OptimizerKind.Sgd
            ? new Sgd(groups, _o.SgdMomentum)
            : new AdamW(groups, _o.AdamBeta1, _o.AdamBeta2, _o.AdamEpsilon);
    }

    public void Dispose()
    {
        _optimizer.Dispose();
        _generator.Dispose();
    }
}
