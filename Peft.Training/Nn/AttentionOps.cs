using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Nn;

/// <summary>Shared attention pieces: additive masks, key/value head repetition, scaled dot-product attention.</summary>
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
        long keyLen = pastLen + queryLen;
        var q = torch.arange(pastLen, keyLen, device: device).unsqueeze(1);   // absolute query positions
        var k = torch.arange(keyLen, device: device).unsqueeze(0);
        var allowed = k <= q;
        if (slidingWindow is long w) allowed = allowed & (k > q - w);
        var keep = allowed.unsqueeze(0).unsqueeze(0).expand(batch, 1, queryLen, keyLen);
        if (attentionMask is not null)
            keep = keep & attentionMask.to(ScalarType.Bool).view(batch, 1, 1, keyLen);
        return MaskFromBool(keep, dtype).MoveToOuterDisposeScope();
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
        var mins = torch.full(1, min, dtype, keep.device);
        return torch.where(keep, zeros, mins);
    }

    public static double MinValue(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => -65504.0,
        ScalarType.BFloat16 => -3.3895313892515355e38,
        ScalarType.Float64 => double.MinValue,
        _ => float.MinValue,
    };

    /// <summary>[b, kv_heads, s, d] → [b, kv_heads·groups, s, d] (grouped-query attention).</summary>
    public static Tensor RepeatKv(Tensor x, long groups)
    {
        if (groups == 1) return x.alias();
        long b = x.shape[0], h = x.shape[1], s = x.shape[2], d = x.shape[3];
        return x.unsqueeze(2).expand(b, h, groups, s, d).reshape(b, h * groups, s, d);
    }

    /// <summary>softmax(q·kᵀ·scale + mask)·v with the softmax in float32 (as transformers' eager attention).</summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? additiveMask, double scale, Tensor? bias = null)
    {
        using var scope = torch.NewDisposeScope();
        var scores = q.matmul(k.transpose(-1, -2));
        if (scale != 1.0) scores = scores * scale;
        if (bias is not null) scores = scores + bias;
        if (additiveMask is not null) scores = scores + additiveMask;
        var probs = scores.softmax(-1, ScalarType.Float32).to(q.dtype);
        return probs.matmul(v).MoveToOuterDisposeScope();
    }
}
