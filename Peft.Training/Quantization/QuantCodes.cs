using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Quantization;

/// <summary>
/// The code tables bitsandbytes quantises against (<c>bitsandbytes.functional.get_4bit_type</c> and
/// <c>create_dynamic_map</c>). They are the <c>quant_map</c> / <c>nested_quant_map</c> tensors of a saved 4-bit weight.
/// </summary>
public static class QuantCodes
{
    /// <summary>NF4: quantiles of N(0,1) (8 positive, 7 negative, exact zero) scaled to [-1, 1].</summary>
    public static readonly float[] Nf4 =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
        0.7229568362236023f, 1.0f,
    ];

    /// <summary>
    /// FP4 (1 sign, 2 exponent, 1 mantissa bits, bias 3) in bitsandbytes' index order, divided by its max (12), as
    /// <c>get_4bit_type("fp4")</c> and the CUDA kernels use it (index 8 is -0).
    /// </summary>
    public static readonly float[] Fp4 = BuildFp4();

    private static float[] BuildFp4()
    {
        float[] raw = [0f, 0.0625f, 8f, 12f, 4f, 6f, 2f, 3f, -0f, -0.0625f, -8f, -12f, -4f, -6f, -2f, -3f];
        return raw.Select(v => v / 12f).ToArray();
    }

    public static float[] FourBit(QuantMethod method) => method switch
    {
        QuantMethod.Nf4 => Nf4,
        QuantMethod.Fp4 => Fp4,
        _ => throw new ArgumentException($"{method} is not a 4-bit method"),
    };

    private static float[]? _dynamic;

    /// <summary>
    /// bitsandbytes' signed 8-bit dynamic map (<c>create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)</c>):
    /// for exponent i = 0..6, the midpoints of <c>linspace(0.1, 1, 2^i + 1)</c> times 10^(i-6), both signs, plus 0 and
    /// 1, sorted (256 values). Built with libtorch's own linspace/mul in float32 so every value matches PyTorch's.
    /// </summary>
    public static float[] Dynamic8Bit => _dynamic ??= BuildDynamic();

    private static float[] BuildDynamic()
    {
        var data = new List<float>(256);
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar two = 2.0;
        for (int i = 0; i < 7; i++)
        {
            int items = (1 << i) + 1;
            using var b = torch.linspace(0.1, 1.0, items, ScalarType.Float32);
            using var lo = b.narrow(0, 0, items - 1);
            using var hi = b.narrow(0, 1, items - 1);
            using var sum = lo + hi;
            using var means = sum / two;
            double scale = Math.Pow(10, i - 6);
            using Scalar posScale = scale, negScale = -scale;
            using var pos = means * posScale;
            using var neg = means * negScale;
            data.AddRange(pos.data<float>().ToArray());
            data.AddRange(neg.data<float>().ToArray());
        }
        data.Add(0f);
        data.Add(1f);
        data.Sort();
        return data.ToArray();
    }
}
