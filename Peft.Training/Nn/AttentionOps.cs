using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Nn;

/// <summary>Shared attention pieces: additive masks, scaled dot-product attention (grouped-query too).</summary>
public static class AttentionOps
{
    /// <summary>
    /// Additive mask [batch, 1, q, past+q]: 0 where a query may attend, the dtype's minimum elsewhere (causal and
    /// padding), as transformers builds it. <paramref name="attentionMask"/> is [batch, past+q] (1 = keep) or null.
    /// </summary>
    public static Tensor CausalMask(Tensor? attentionMask, long batch, long queryLen, long pastLen, ScalarType dtype, Device device,
        long? slidingWindow = null)
    {
        using var scope = torch.NewDisposeScope();
        var keep = CausalKeep(attentionMask, batch, queryLen, pastLen, device, slidingWindow);
        return MaskFromBool(keep, dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Bool [batch, 1, q, past+q] (batch 1 when <paramref name="attentionMask"/> is null): true where a query may
    /// attend (key not in the future, inside the sliding window, not padding).
    /// </summary>
    public static Tensor CausalKeep(Tensor? attentionMask, long batch, long queryLen, long pastLen, Device device, long? slidingWindow = null)
    {
        using var scope = torch.NewDisposeScope();
        long keyLen = pastLen + queryLen;
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        var q = TensorRanges.Of(pastLen, keyLen, device).unsqueeze(1);   // absolute query positions
        var k = TensorRanges.Of(0, keyLen, device).unsqueeze(0);
        var allowed = k <= q;
        if (slidingWindow is long w)
        {
            using Scalar window = w;
            allowed = allowed & (k > q - window);
        }
        var keep = allowed.unsqueeze(0).unsqueeze(0);
        if (attentionMask is not null)
            keep = keep.expand(batch, 1, queryLen, keyLen) & attentionMask.to(ScalarType.Bool).view(batch, 1, 1, keyLen);
        return keep.MoveToOuterDisposeScope();
    }

    /// <summary>Bidirectional padding mask [batch, 1, 1, keys] (encoders).</summary>
    public static Tensor PaddingMask(Tensor attentionMask, ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        var keep = attentionMask.to(ScalarType.Bool).unsqueeze(1).unsqueeze(1);
        return MaskFromBool(keep, dtype).MoveToOuterDisposeScope();
    }

    public static Tensor MaskFromBool(Tensor keep, ScalarType dtype)
    {
        double min = MinValue(dtype);
        var zeros = torch.zeros(1, dtype, keep.device);
        using Scalar minS = min;
        var mins = torch.full(1, minS, dtype, keep.device);
        return torch.where(keep, zeros, mins);
    }

    public static double MinValue(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => -65504.0,
        ScalarType.BFloat16 => -3.3895313892515355e38,
        ScalarType.Float64 => double.MinValue,
        _ => float.MinValue,
    };

    /// <summary>
    /// <see cref="Attend"/> with an additive mask for grouped-query attention, without repeating keys and values per
    /// query head: each key/value head's <paramref name="groups"/> query heads are stacked along the query axis
    /// ([b, kv, groups·s, d]) and meet their shared keys in one matmul. The same dot products and the same dropout
    /// layout as repeating, but a decode step no longer copies the whole cache groups times.
    /// </summary>
    public static Tensor AttendGrouped(Tensor q, Tensor k, Tensor v, Tensor? additiveMask, double scale, long groups,
        Func<Tensor, Tensor>? dropout = null)
    {
        if (groups == 1) return Attend(q, k, v, additiveMask, scale, dropout: dropout);
        using var scope = torch.NewDisposeScope();
        long b = q.shape[0], h = q.shape[1], s = q.shape[2], d = q.shape[3], kv = k.shape[1], keys = k.shape[2];
        var scores = q.reshape(b, kv, groups * s, d).matmul(k.transpose(-1, -2));   // [b, kv, groups·s, keys]
        using Scalar scaleS = scale;
        if (scale != 1.0) scores = scores * scaleS;
        if (additiveMask is not null)
            scores = (scores.view(b, kv, groups, s, keys) + additiveMask.unsqueeze(2)).view(b, kv, groups * s, keys);
        var probs = scores.softmax(-1, ScalarType.Float32).to(q.dtype);
        if (dropout is not null) probs = dropout(probs);
        return probs.matmul(v).view(b, h, s, d).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// softmax(q·kᵀ·scale + bias, masked)·v with the softmax in float32 (transformers' eager attention) and
    /// <paramref name="dropout"/> on the probabilities (training). How the mask enters differs per family in
    /// transformers, and it shows on a query that may attend to nothing (a pad position of a left-padded row, whose
    /// label is the first real token): all its scores are the dtype's minimum, the softmax is uniform over them, and
    /// the operation decides which scores get gradients:
    /// <list type="bullet">
    /// <item><paramref name="additiveMask"/> alone (Llama, T5, BERT: <c>scores + mask</c>): every score does;</item>
    /// <item><paramref name="masked"/> (bool, true = replaced by the minimum: BLOOM's <c>masked_fill</c>, GPT-2's causal
    /// <c>torch.where</c>, whose padding is then added): replaced scores get none;</item>
    /// <item><paramref name="clampToMin"/> (OPT: <c>max(scores + mask, min)</c>): masked scores tie with the minimum,
    /// and a tie passes half the gradient.</item>
    /// </list>
    /// </summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? additiveMask, double scale, Tensor? bias = null,
        Tensor? masked = null, bool clampToMin = false, Func<Tensor, Tensor>? dropout = null)
    {
        using var scope = torch.NewDisposeScope();
        var scores = q.matmul(k.transpose(-1, -2));
        using Scalar scaleS = scale, minS = MinValue(scores.dtype);
        if (scale != 1.0) scores = scores * scaleS;
        if (bias is not null) scores = scores + bias;
        if (masked is not null) scores = scores.masked_fill(masked, minS);
        if (additiveMask is not null) scores = scores + additiveMask;
        if (clampToMin) scores = torch.maximum(scores, torch.full(1, minS, scores.dtype, scores.device));
        var probs = scores.softmax(-1, ScalarType.Float32).to(q.dtype);
        if (dropout is not null) probs = dropout(probs);
        return probs.matmul(v).MoveToOuterDisposeScope();
    }
}
