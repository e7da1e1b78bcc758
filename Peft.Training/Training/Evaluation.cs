using Peft.Training.Data;
using Peft.Training.Models;
using TorchSharp;

namespace Peft.Training.Training;

/// <summary>
/// Scores a model (with its adapter) on a dataset, the same way for the trainer's evaluations and <c>peft eval</c>:
/// <c>eval_loss</c> (mean over counted labels), <c>eval_perplexity</c> for language models, <c>eval_accuracy</c>
/// (+ macro <c>eval_f1</c> for sequence classification). The caller puts the model in eval mode.
/// </summary>
public static class Evaluation
{
    /// <summary>The metrics and how many labels the loss averaged over (tokens for language models, rows for classifiers).</summary>
    public sealed record Result(IReadOnlyDictionary<string, double> Metrics, long Counted);

    public static Result Run(TrainableModel model, DataCollator collator, TrainingDataset data, int batchSize,
        CancellationToken cancellation = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        using var noGrad = torch.no_grad();
        double lossSum = 0;
        long count = 0, correct = 0, labelled = 0;
        var task = collator.Task;
        int virtualTokens = model.VirtualTokens;
        var pairs = new List<(long Label, long Pred)>();
        foreach (var rows in data.Examples.Chunk(batchSize))
        {
            cancellation.ThrowIfCancellationRequested();
            using var scope = torch.NewDisposeScope();
            using var batch = collator.Collate(rows, model.Model.Device);
            using var output = model.Forward(batch.ToForwardArgs());
            var ls = Trainer.ComputeLoss(output.Logits, batch.Labels, task, virtualTokens);
            lossSum += ls.Sum.ToDouble();
            count += ls.Count;
            if (task is not (TaskType.SequenceClassification or TaskType.TokenClassification)) continue;
            var logits = output.Logits;
            if (task == TaskType.TokenClassification && virtualTokens > 0)
                logits = logits.narrow(1, virtualTokens, logits.shape[1] - virtualTokens);
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
        double loss = count > 0 ? lossSum / count : 0;
        var metrics = new Dictionary<string, double> { ["eval_loss"] = loss };
        if (task is TaskType.CausalLM or TaskType.Seq2SeqLM) metrics["eval_perplexity"] = Math.Exp(Math.Min(loss, 700));
        if (labelled > 0) metrics["eval_accuracy"] = (double)correct / labelled;
        if (task == TaskType.SequenceClassification && pairs.Count > 0) metrics["eval_f1"] = MacroF1(pairs);
        return new Result(metrics, count);
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
