using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Quantization;

/// <summary>
/// Block-wise absmax quantisation as bitsandbytes' default (pure torch) backend does it
/// (<c>backends/default/ops.py</c>: <c>quantize_4bit</c>, <c>quantize_blockwise</c>, <c>int8_vectorwise_quant</c>):
/// flatten, split into blocks, scale each block by 1/absmax (a float32 reciprocal, then clamp to [-1, 1]) and take
/// the nearest code by <c>argmin |x - code|</c> (ties go to the lower index). Every op is a libtorch op, so it runs
/// on whatever device the input is on.
/// </summary>
public static class Blockwise
{
    /// <summary>Values scaled per chunk: bounds the [chunk, codes] distance matrix (16 MB for 4-bit codes).</summary>
    private const long ChunkElements = 1 << 18;

    /// <summary>
    /// 4-bit quantisation. Returns the packed bytes as uint8 [ceil(n/2), 1] (element 2k in the high nibble, 2k+1 in
    /// the low one, an odd tail padded with the code nearest 0) and the float32 absmax per block.
    /// </summary>
    public static (Tensor Packed, Tensor Absmax) Quantize4Bit(Tensor a, QuantMethod method, int blockSize = 64)
    {
        using var scope = torch.NewDisposeScope();
        using var code = torch.tensor(QuantCodes.FourBit(method), device: a.device);
        var (idx, absmax) = QuantizeToIndices(a, code, blockSize);
        long n = idx.numel();
        var q = n % 2 == 0 ? idx : torch.cat([idx, NearestIndex(torch.zeros(1, ScalarType.Float32, a.device), code)]);
        var pairs = q.view(-1, 2);
        var packed = pairs[.., 0].bitwise_left_shift(4).bitwise_or(pairs[.., 1]).to(ScalarType.Byte).unsqueeze(1);
        return (packed.MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    /// <summary>Inverse of <see cref="Quantize4Bit"/>: code[index] × absmax of its block (float32), then cast to <paramref name="dtype"/>.</summary>
    public static Tensor Dequantize4Bit(Tensor packed, Tensor absmax, float[] code16, long[] shape, int blockSize, ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        long n = shape.Aggregate(1L, (x, y) => x * y);
        var bytes = packed.reshape(-1).to(ScalarType.Int64);
        var idx = torch.stack([bytes.bitwise_right_shift(4), bytes.bitwise_and(0xF)], 1).reshape(-1).narrow(0, 0, n);
        using var code = torch.tensor(code16, device: packed.device);
        var values = code.index_select(0, idx);
        return ScaleBlocks(values, absmax, blockSize).to(dtype).reshape(shape).MoveToOuterDisposeScope();
    }

    /// <summary>8-bit block-wise quantisation against a 256-entry code (the dynamic map): uint8 indices + float32 absmax per block.</summary>
    public static (Tensor Indices, Tensor Absmax) QuantizeBlockwise8(Tensor a, float[] code256, int blockSize)
    {
        using var scope = torch.NewDisposeScope();
        using var code = torch.tensor(code256, device: a.device);
        var (idx, absmax) = QuantizeToIndices(a, code, blockSize);
        return (idx.to(ScalarType.Byte).reshape(a.shape).MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    /// <summary>Inverse of <see cref="QuantizeBlockwise8"/> (float32).</summary>
    public static Tensor DequantizeBlockwise8(Tensor indices, Tensor absmax, float[] code256, int blockSize)
    {
        using var scope = torch.NewDisposeScope();
        using var code = torch.tensor(code256, device: indices.device);
        var values = code.index_select(0, indices.reshape(-1).to(ScalarType.Int64));
        return ScaleBlocks(values, absmax, blockSize).reshape(indices.shape).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// LLM.int8() weight quantisation (<c>int8_vectorwise_quant</c> with threshold 0): per row,
    /// round(w × 127/absmax) as int8, and the row absmax (SCB, float32).
    /// </summary>
    public static (Tensor Int8, Tensor Scb) QuantizeInt8Rows(Tensor w)
    {
        using var scope = torch.NewDisposeScope();
        var f = w.to(ScalarType.Float32);
        var scb = f.abs().amax([1]);
        // 127/absmax as PyTorch's scalar / tensor computes it: reciprocal, then × 127. An all-zero row stays 0.
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar int8Max = 127.0;
        var scale = scb.reciprocal().mul(int8Max).nan_to_num(0, 0, 0);
        var q = f.mul(scale.unsqueeze(1)).round().to(ScalarType.Int8);
        return (q.MoveToOuterDisposeScope(), scb.MoveToOuterDisposeScope());
    }

    /// <summary>int8 × SCB × (1/127) as <c>int8_vectorwise_dequant</c> (the constant is float32(1/127)).</summary>
    public static Tensor DequantizeInt8Rows(Tensor q, Tensor scb, ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        using Scalar inv127 = 7.874015718698502e-3;
        var w = q.to(ScalarType.Float32).mul(scb.view(-1, 1)).mul(inv127);
        return w.to(dtype).MoveToOuterDisposeScope();
    }

    private static Tensor ScaleBlocks(Tensor values, Tensor absmax, int blockSize)
    {
        long n = values.numel();
        long full = n / blockSize, rem = n % blockSize;
        var am = absmax.to(ScalarType.Float32);
        var head = values.narrow(0, 0, full * blockSize).view(full, blockSize).mul(am.narrow(0, 0, full).view(-1, 1)).reshape(-1);
        if (rem == 0) return head;
        var tail = values.narrow(0, full * blockSize, rem).mul(am[full]);
        return torch.cat([head, tail]);
    }

    /// <summary>Flattened nearest-code indices (int64) and float32 absmax per block (the last block may be partial).</summary>
    private static (Tensor Indices, Tensor Absmax) QuantizeToIndices(Tensor a, Tensor code, int blockSize)
    {
        if (a.dtype is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16))
            throw new ArgumentException($"block-wise quantisation needs a float16/bfloat16/float32 tensor, got {a.dtype}");
        if (blockSize <= 0) throw new ArgumentOutOfRangeException(nameof(blockSize));
        var flat = a.reshape(-1);
        long n = flat.numel();
        long blocks = (n + blockSize - 1) / blockSize;
        // absmax in the input dtype (exact in float32), like abs(A).max(dim=-1) before it is stored as float32.
        var absmax = torch.empty(blocks, ScalarType.Float32, a.device);
        var indices = torch.empty(n, ScalarType.Int64, a.device);
        long chunkBlocks = Math.Max(1, ChunkElements / blockSize);
        using Scalar minusOne = -1, one = 1;
        for (long b0 = 0; b0 < blocks; b0 += chunkBlocks)
        {
            using var scope = torch.NewDisposeScope();
            long nb = Math.Min(chunkBlocks, blocks - b0);
            long start = b0 * blockSize, len = Math.Min(nb * blockSize, n - start);
            var x = flat.narrow(0, start, len).to(ScalarType.Float32);
            long fullBlocks = len / blockSize, rem = len % blockSize;
            var parts = new List<Tensor>();
            if (fullBlocks > 0)
            {
                var blk = x.narrow(0, 0, fullBlocks * blockSize).view(fullBlocks, blockSize);
                var m = blk.abs().amax([1]);
                absmax.narrow(0, b0, fullBlocks).copy_(m);
                parts.Add(blk.mul(m.reciprocal().view(-1, 1)).clamp(minusOne, one).reshape(-1));
            }
            if (rem > 0)
            {
                var tail = x.narrow(0, fullBlocks * blockSize, rem);
                var m = tail.abs().max();
                absmax[b0 + fullBlocks].copy_(m);
                parts.Add(tail.mul(m.reciprocal()).clamp(minusOne, one));
            }
            var scaled = parts.Count == 1 ? parts[0] : torch.cat(parts);
            indices.narrow(0, start, len).copy_(NearestIndex(scaled, code));
        }
        return (indices, absmax);
    }

    /// <summary>argmin |x - code| per element (first index on ties, as torch.argmin).</summary>
    private static Tensor NearestIndex(Tensor scaled, Tensor code) =>
        (scaled.unsqueeze(1) - code.unsqueeze(0)).abs_().argmin(1);
}
