using Peft.Training.Data;
using Peft.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Training;

public sealed partial class Trainer
{
    /// <summary>
    /// Forward/backward over <paramref name="count"/> micro-batches starting at <paramref name="first"/>, then clip, update,
    /// run the tuner hook and clear gradients. Returns the window's loss (before the update), grad norm and the lr used.
    /// </summary>
    private (double Loss, double GradNorm, double Lr) OptimizerStep(int[] order, int first, int count)
    {
        var batches = Enumerable.Range(first, count)
            .Select(b => order.Skip(b * _o.BatchSize).Take(_o.BatchSize).Select(i => _train.Examples[i]).ToList())
            .ToList();
        long items = batches.Sum(rows => rows.Sum(r => r.LossItems(_collator.Task, _model.VirtualTokens)));
        double loss = 0;
        var hooks = _model.Hooks;
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar windowItems = Math.Max(1, items), microBatches = count;
        foreach (var rows in batches)
        {
            using var scope = torch.NewDisposeScope();
            using var batch = _collator.Collate(rows, _model.Model.Device);
            using var output = _model.Forward(batch.ToForwardArgs());
            var sum = ComputeLoss(output, batch).Sum;
            // The graph keeps what backward needs (the log-softmax), not the logits: free them before backward runs.
            output.Logits.Dispose();
            // Normalised by the label count of the whole window: accumulation matches one big batch exactly.
            var micro = sum / windowItems;
            if (hooks?.ExtraLoss() is { } extra) micro = micro + extra / microBatches;
            micro.backward();
            loss += micro.ToDouble();
            _tokensThisRun += batch.Tokens;
        }
        double gradNorm = ClipGradients();
        double factor = _schedule.Factor(_state.GlobalStep);
        _optimizer.Step(factor);
        hooks?.OnOptimizerStep(_state.GlobalStep);
        _optimizer.ZeroGrad();
        return (loss, gradNorm, _o.LearningRate * factor);
    }

    /// <summary>The task loss of one forward pass (sum and item count; labels -100 ignored).</summary>
    public LossSum ComputeLoss(ModelOutput output, Batch batch) => ComputeLoss(output.Logits, batch.Labels, _collator.Task, _model.VirtualTokens);

    /// <summary>Causal LM (shifted), encoder-decoder and token classification (per token), or sequence classification.</summary>
    public static LossSum ComputeLoss(Tensor logits, Tensor labels, TaskType task, int virtualTokens = 0) => task switch
    {
        TaskType.CausalLM => Losses.CausalLm(logits, labels, virtualTokens),
        TaskType.SequenceClassification => Losses.SequenceClassification(logits, labels),
        TaskType.Seq2SeqLM or TaskType.TokenClassification => Losses.PerToken(logits, labels, virtualTokens),
        _ => throw new PeftUserException($"training a {task.ToPeftString()} model is not supported"),
    };

    /// <summary>Global L2 norm of the gradients (before clipping); scales them to <c>MaxGradNorm</c> when above it.</summary>
    private double ClipGradients()
    {
        using var scope = torch.NewDisposeScope(); // the grad handles taken here must not outlive the step
        using var noGrad = torch.no_grad();
        var grads = _params.Select(p => p.Parameter.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0;
        // Norm of per-tensor norms, like torch's clip_grad_norm_: no gradient-sized temporaries survive the loop
        // (a float64 copy of every gradient used to double full fine-tuning's peak memory).
        double sumSquares = 0;
        foreach (var g in grads)
        {
            using var n = g.norm();
            double v = n.ToDouble();
            sumSquares += v * v;
        }
        double total = Math.Sqrt(sumSquares);
        if (_o.MaxGradNorm > 0)
        {
            double coef = _o.MaxGradNorm / (total + 1e-6);
            if (coef < 1)
            {
                using Scalar clipCoef = coef;
                foreach (var g in grads) g.mul_(clipCoef);
            }
        }
        return total;
    }

    /// <summary>Scores <paramref name="data"/> in eval mode (no dropout, no grad); see <see cref="Evaluation.Run"/>.</summary>
    public IReadOnlyDictionary<string, double> Evaluate(TrainingDataset data)
    {
        bool wasTraining = _model.Root.training;
        _model.Root.eval();
        try
        {
            return Evaluation.Run(_model, _collator, data, _o.EvalBatchSize).Metrics;
        }
        finally
        {
            if (wasTraining) _model.Root.train();
        }
    }
}
