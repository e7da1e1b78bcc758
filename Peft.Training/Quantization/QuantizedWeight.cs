using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Quantization;

/// <summary>Base-weight quantisation methods (transformers' <c>BitsAndBytesConfig</c>).</summary>
public enum QuantMethod
{
    /// <summary>4-bit NormalFloat, blocks of 64 (QLoRA).</summary>
    Nf4,
    /// <summary>4-bit float (bitsandbytes' FP4), blocks of 64.</summary>
    Fp4,
    /// <summary>LLM.int8()-style row-wise absmax int8 weights (no outlier decomposition: see <see cref="QuantizedWeight"/>).</summary>
    Int8,
}

/// <summary>
/// The tensors of one quantised [out, in] weight, named as the bitsandbytes state-dict suffixes
/// (<c>weight</c>, <c>weight.absmax</c>, ...), and what is needed to dequantise them.
/// </summary>
/// <remarks>
/// 4-bit: <see cref="Packed"/> uint8 [ceil(n/2), 1], <see cref="Absmax"/> float32 per block of 64 — or, double
/// quantised, uint8 indices into the dynamic map with <see cref="NestedAbsmax"/> (float32 per 256 absmax values) and
/// <see cref="Offset"/> (their mean, subtracted before quantising). Int8: <see cref="Packed"/> int8 [out, in] and
/// <see cref="Absmax"/> = SCB (row absmax). The int8 weight is dequantised like the 4-bit ones and multiplied in the
/// compute dtype, so LLM.int8's outlier decomposition (which splits <i>activation</i> columns above 6.0 off the int8
/// matmul) has nothing to do: every column already runs in full precision.
/// </remarks>
public sealed class QuantizedWeight : IDisposable
{
    public required QuantMethod Method { get; init; }
    /// <summary>Logical [out, in] shape.</summary>
    public required long[] Shape { get; init; }
    public int BlockSize { get; init; } = 64;
    /// <summary>dtype the weight had when quantised (bitsandbytes records it as <c>dtype</c>).</summary>
    public ScalarType OriginalDType { get; init; } = ScalarType.Float32;
    public required Tensor Packed { get; set; }
    public required Tensor Absmax { get; set; }
    public Tensor? NestedAbsmax { get; set; }
    public float Offset { get; init; }
    /// <summary>The 16-entry code (<c>quant_map</c>); the method's standard table unless a loaded file says otherwise.</summary>
    public float[] Code { get; init; } = [];
    /// <summary>The 256-entry code of the double-quantised absmax (<c>nested_quant_map</c>).</summary>
    public float[] NestedCode { get; init; } = QuantCodes.Dynamic8Bit;
    public int NestedBlockSize { get; init; } = 256;
    public bool DoubleQuant => NestedAbsmax is not null;
    public long NumElements => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Quantises a float weight ([out, in]) on its own device.</summary>
    public static QuantizedWeight Quantize(Tensor weight, QuantMethod method, bool doubleQuant = false)
    {
        if (weight.dim() != 2) throw new ArgumentException($"expected a 2-D weight, got [{string.Join(", ", weight.shape)}]");
        var shape = weight.shape;
        if (method == QuantMethod.Int8)
        {
            var (q, scb) = Blockwise.QuantizeInt8Rows(weight);
            return new QuantizedWeight { Method = method, Shape = shape, OriginalDType = weight.dtype, Packed = q, Absmax = scb };
        }
        var (packed, absmax) = Blockwise.Quantize4Bit(weight, method);
        if (!doubleQuant)
            return new QuantizedWeight { Method = method, Shape = shape, OriginalDType = weight.dtype, Packed = packed, Absmax = absmax };
        using (absmax)
        {
            // bitsandbytes: offset = absmax.mean(); quantize_blockwise(absmax - offset, blocksize=256) with the dynamic map.
            using var mean = absmax.mean();
            float offset = mean.item<float>();
            using var centred = absmax - mean;
            var (qAbsmax, nested) = Blockwise.QuantizeBlockwise8(centred, QuantCodes.Dynamic8Bit, 256);
            return new QuantizedWeight
            {
                Method = method, Shape = shape, OriginalDType = weight.dtype, Packed = packed, Absmax = qAbsmax,
                NestedAbsmax = nested, Offset = offset,
            };
        }
    }

    /// <summary>The float32 absmax per 4-bit block (undoing double quantisation: dynamic code × nested absmax + offset).</summary>
    public Tensor BlockAbsmax()
    {
        if (NestedAbsmax is null) return Absmax.alias();
        using var d = Blockwise.DequantizeBlockwise8(Absmax, NestedAbsmax, NestedCode, NestedBlockSize);
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar offset = Offset;
        return d.add(offset);
    }

    /// <summary>The [out, in] weight in <paramref name="dtype"/> (a new tensor).</summary>
    public Tensor Dequantize(ScalarType dtype)
    {
        if (Method == QuantMethod.Int8) return Blockwise.DequantizeInt8Rows(Packed, Absmax, dtype);
        using var absmax = BlockAbsmax();
        return Blockwise.Dequantize4Bit(Packed, absmax, Code.Length == 16 ? Code : QuantCodes.FourBit(Method), Shape, BlockSize, dtype);
    }

    /// <summary>Bytes held by the quantised tensors (packed weight, absmax, nested absmax; code tables are shared constants).</summary>
    public long StorageBytes => Bytes(Packed) + Bytes(Absmax) + (NestedAbsmax is null ? 0 : Bytes(NestedAbsmax));

    private static long Bytes(Tensor t) => t.numel() * t.ElementSize;

    public void MoveTo(Device device)
    {
        Packed = Move(Packed, device);
        Absmax = Move(Absmax, device);
        if (NestedAbsmax is not null) NestedAbsmax = Move(NestedAbsmax, device);
    }

    private static Tensor Move(Tensor t, Device device)
    {
        if (t.device_type == device.type && t.device_index == device.index) return t;   // Device is a class: == compares references
        var moved = t.to(device);
        t.Dispose();
        return moved;
    }

    public void Dispose()
    {
        Packed.Dispose();
        Absmax.Dispose();
        NestedAbsmax?.Dispose();
    }
}
