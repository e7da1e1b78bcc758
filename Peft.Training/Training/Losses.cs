using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Training;

/// <summary>
/// A loss as (sum over counted items, number of items), so that gradient accumulation can divide by the item count
/// of the whole accumulation window: accumulating k batches of b equals one batch of k·b exactly.
/// </summary>
public readonly record struct LossSum(Tensor Sum, long Count)
{
    /// <summary>Mean over counted items (0 when nothing was counted, instead of NaN).</summary>
    public Tensor Mean()
    {
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        if (Count > 0)
        {
            using Scalar count = Count;
            return Sum / count;
        }
        using Scalar zero = 0;
        return Sum * zero;
    }
}

/// <summary>Task losses with transformers' conventions: labels of -100 are ignored.</summary>
public static class Losses
{
    public const long IgnoreIndex = -100;

    /// <summary>
    /// Causal LM: logits[:, :-1] predict labels[:, 1:] (transformers' shift). <paramref name="virtualTokens"/>
    /// positions prepended by prompt tuning / P-tuning get label -100 first.
    /// </summary>
    /// <remarks>
    /// The labels move instead of the logits (labels[:, 1:] then one -100): the same terms, but no copy of the
    /// batch × seq × vocab logits in forward and none in backward (a narrowed view would be copied by the reshape and
    /// its gradient scattered into a fresh full-size tensor) — about two logits-sized buffers less at the step's peak.
    /// </remarks>
    public static LossSum CausalLm(Tensor logits, Tensor labels, int virtualTokens = 0)
    {
        using var scope = torch.NewDisposeScope();
        labels = PrependIgnored(labels, virtualTokens);
        long s = logits.shape[1];
        if (labels.shape[1] != s)
            throw new ArgumentException($"logits have {s} positions but labels have {labels.shape[1]}");
        using Scalar ignoreId = IgnoreIndex;
        var shiftLabels = torch.cat([labels.narrow(1, 1, s - 1), torch.full(labels.shape[0], 1, ignoreId, labels.dtype, labels.device)], 1);
        return Finish(TokenSum(logits, shiftLabels), shiftLabels);
    }

    /// <summary>Per-token loss without shift (token classification, encoder-decoder LM with decoder labels).</summary>
    public static LossSum PerToken(Tensor logits, Tensor labels, int virtualTokens = 0)
    {
        using var scope = torch.NewDisposeScope();
        labels = PrependIgnored(labels, virtualTokens);
        return Finish(TokenSum(logits, labels), labels);
    }

    /// <summary>Sequence classification: logits [batch, classes], labels [batch].</summary>
    public static LossSum SequenceClassification(Tensor logits, Tensor labels)
    {
        using var scope = torch.NewDisposeScope();
        var sum = nn.functional.cross_entropy(logits.to(ScalarType.Float32), labels, ignore_index: IgnoreIndex, reduction: nn.Reduction.Sum);
        return Finish(sum, labels);
    }

    private static Tensor TokenSum(Tensor logits, Tensor labels)
    {
        long v = logits.shape[^1];
        return nn.functional.cross_entropy(logits.to(ScalarType.Float32).reshape(-1, v), labels.reshape(-1),
            ignore_index: IgnoreIndex, reduction: nn.Reduction.Sum);
    }

    private static LossSum Finish(Tensor sum, Tensor labels)
    {
        using Scalar ignoreId = IgnoreIndex;
        using var counted = labels.ne(ignoreId).sum();
        return new LossSum(sum.MoveToOuterDisposeScope(), counted.item<long>());
    }

    private static Tensor PrependIgnored(Tensor labels, int n)
    {
        if (n <= 0) return labels;
        using Scalar ignoreId = IgnoreIndex;
        return torch.cat([torch.full(labels.shape[0], n, ignoreId, ScalarType.Int64, labels.device), labels], 1);
    }
}
