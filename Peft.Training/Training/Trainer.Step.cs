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
        foreach (var rows in batches)
        {
            using var scope = torch.NewDisposeScope();
            using var batch = _collator.Collate(rows, _model.Model.Device);
            using var output = _model.Forward(batch.ToForwardArgs());
            var sum = ComputeLoss(output, batch).Sum;
            // Normalised by the label count of the whole window: accumulation matches one big batch exactly.
            var micro = sum / Math.Max(1, items);
            if (hooks?.ExtraLoss() is { } extra) micro = micro + extra / count;
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
        _ => throw new NotSupportedException($"training a {task.ToPeftString()} model is not supported"),
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
            if (coef < 1) foreach (var g in grads) g.mul_(coef);
        }
        return total;
    }

    /// <summary>
    /// Loss over a dataset in eval mode (no dropout, no grad): <c>eval_loss</c> (mean over counted labels), and
    /// <c>eval_perplexity</c> for language models, <c>eval_accuracy</c> (+ macro <c>eval_f1</c> for sequence classification).
    /// </summary>
    public IReadOnlyDictionary<string, double> Evaluate(TrainingDataset data)
    {
        bool wasTraining = _model.Root.training;
        _model.Root.eval();
        try
        {
            using var noGrad = torch.no_grad();
            double lossSum = 0;
            long count = 0, correct = 0, labelled = 0;
            var task = _collator.Task;
            var pairs = new List<(long Label, long Pred)>();
            for (int start = 0; start < data.Count; start += _o.EvalBatchSize)
            {
                using var scope = torch.NewDisposeScope();
                var rows = data.Examples.Skip(start).Take(_o.EvalBatchSize).ToList();
                using var batch = _collator.Collate(rows, _model.Model.Device);
                using var output = _model.Forward(batch.ToForwardArgs());
                var ls = ComputeLoss(output, batch);
                lossSum += ls.Sum.ToDouble();
                count += ls.Count;
                if (task is TaskType.SequenceClassification or TaskType.TokenClassification)
                {
                    var logits = output.Logits;
                    if (task == TaskType.TokenClassification && _model.VirtualTokens > 0)
                        logits = logits.narrow(1, _model.VirtualTokens, logits.shape[1] - _model.VirtualTokens);
                    var pred = logits.argmax(-1).reshape(-1).data<long>().ToArray();
                    var gold = batch.Labels.reshape(-1).data<long>().ToArray();
                    for (int i = 0; i < gold.Length; i++)
                    {
                        if (gold[i] == Losses.IgnoreIndex) continue;
                        labelled++;
                        if (pred[i] == gold[i]) correct++;
                        pairs.Add((gold[i], pred[i]));
                    }
                }
            }
            double loss = count > 0 ? lossSum / count : 0;
            var metrics = new Dictionary<string, double> { ["eval_loss"] = loss };
            if (task is TaskType.CausalLM or TaskType.Seq2SeqLM) metrics["eval_perplexity"] = Math.Exp(Math.Min(loss, 700));
            if (labelled > 0) metrics["eval_accuracy"] = (double)correct / labelled;
            if (task == TaskType.SequenceClassification && pairs.Count > 0) metrics["eval_f1"] = MacroF1(pairs);
            return metrics;
        }
        finally
        {
            if (wasTraining) _model.Root.train();
        }
    }

    /// <summary>Unweighted mean of per-class F1 over the classes seen in labels or predictions (sklearn's macro average).</summary>
    public static double MacroF1(IReadOnlyList<(long Label, long Pred)> pairs)
    {
        var classes = pairs.Select(p => p.Label).Concat(pairs.Select(p => p.Pred)).Distinct().ToList();
        double sum = 0;
        foreach (var c in classes)
        {
            long tp = pairs.Count(p => p.Label == c && p.Pred == c);
            long fp = pairs.Count(p => p.Label != c && p.Pred == c);
            long fn = pairs.Count(p => p.Label == c && p.Pred != c);
            sum += tp == 0 ? 0 : 2.0 * tp / (2.0 * tp + fp + fn);
        }
        return sum / classes.Count;
    }
}
