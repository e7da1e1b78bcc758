using Peft.Training.Nn;
using Peft.Training.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Quantization;

/// <summary>
/// NF4/FP4/int8 against bitsandbytes' definitions (functional.py get_4bit_type / create_normal_map /
/// create_dynamic_map and backends/default/ops.py quantize_4bit, read from bitsandbytes' public source; no Python
/// bitsandbytes runs here). A scalar C# re-statement of the algorithm checks the tensor implementation byte for byte.
/// </summary>
public class BlockwiseQuantTests
{
    [Fact]
    public void Nf4TableIsBitsandbytesTableAndItsNormalQuantileDerivation()
    {
        float[] expected =
        [
            -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
            -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
            0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
            0.7229568362236023f, 1.0f,
        ];
        Assert.Equal(expected, QuantCodes.Nf4);
        // create_normal_map(offset=0.9677083): 8 positive quantiles, 7 negative, an exact 0; sorted, / max.
        static double[] Quantiles(int steps)
        {
            using var p = torch.linspace(0.9677083, 0.5, steps, ScalarType.Float64);
            using var z = (p * 2 - 1).erfinv() * Math.Sqrt(2);
            return z.data<double>().ToArray()[..^1];
        }
        var v = Quantiles(9).Concat(Quantiles(8).Select(x => -x)).Append(0.0).Order().ToArray();
        double max = v.Max();
        for (int i = 0; i < 16; i++) Assert.True(Math.Abs(v[i] / max - expected[i]) < 2e-6, $"code {i}: {v[i] / max} vs {expected[i]}");
    }

    [Fact]
    public void Fp4TableIsE2M1OverTwelveInBitsandbytesIndexOrder()
    {
        // bitsandbytes' torch-backend table (4 decimals) and the exact one the CUDA kernels use.
        double[] rounded = [0, 0.0052, 0.6667, 1, 0.3333, 0.5, 0.1667, 0.25, 0, -0.0052, -0.6667, -1, -0.3333, -0.5, -0.1667, -0.25];
        for (int i = 0; i < 16; i++) Assert.Equal(rounded[i], QuantCodes.Fp4[i], 4);
        Assert.Equal(0.0625f / 12f, QuantCodes.Fp4[1]);
        Assert.True(float.IsNegative(QuantCodes.Fp4[8]));   // index 8 is -0 (the sign bit)
        for (int i = 0; i < 8; i++) Assert.Equal(-QuantCodes.Fp4[i], QuantCodes.Fp4[i + 8]);
    }

    [Fact]
    public void DynamicMapHasBitsandbytesShape()
    {
        var d = QuantCodes.Dynamic8Bit;
        Assert.Equal(256, d.Length);
        Assert.True(d.Zip(d.Skip(1)).All(p => p.First <= p.Second));
        Assert.Equal(1.0f, d[^1]);
        Assert.Equal(-0.99296875f, d[0]);            // -(0.9859375 + 1) / 2
        Assert.Equal(128, d.Count(x => x > 0));        // 127 midpoints + 1.0
        Assert.Equal(127, d.Count(x => x < 0));
        Assert.Equal(5.5e-7f, d.Where(x => x > 0).Min(), 1e-12f);  // 1e-6 × (0.1 + 1) / 2
    }

    [Fact]
    public void PackingPutsTheEvenElementInTheHighNibble()
    {
        // One block of 64 whose values are the codes themselves (absmax 1): indices are i % 16.
        var values = Enumerable.Range(0, 64).Select(i => QuantCodes.Nf4[i % 16]).ToArray();
        using var w = torch.tensor(values);
        var (packed, absmax) = Blockwise.Quantize4Bit(w, QuantMethod.Nf4);
        using (packed) using (absmax)
        {
            Assert.Equal(new long[] { 32, 1 }, packed.shape);
            Assert.Equal(ScalarType.Byte, packed.dtype);
            var bytes = packed.data<byte>().ToArray();
            Assert.Equal(new byte[] { 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF }, bytes[..8]);
            Assert.Equal(1f, absmax.item<float>());
        }
    }

    [Theory]
    [InlineData(QuantMethod.Nf4, 4096)]
    [InlineData(QuantMethod.Nf4, 1001)]   // partial last block and an odd count (padded nibble)
    [InlineData(QuantMethod.Fp4, 4096)]
    [InlineData(QuantMethod.Fp4, 999)]
    public void TensorQuantiserMatchesScalarRestatementByteForByte(QuantMethod method, int n)
    {
        using var gen = new Generator(7);
        using var w = torch.randn([n], generator: gen) * 0.05;
        var (packed, absmax) = Blockwise.Quantize4Bit(w, method);
        using (packed) using (absmax)
        {
            var (refPacked, refAbsmax) = ScalarQuantize4Bit(w.data<float>().ToArray(), QuantCodes.FourBit(method));
            Assert.Equal(refAbsmax, absmax.data<float>().ToArray());
            Assert.Equal(refPacked, packed.data<byte>().ToArray());
        }
    }

    /// <summary>bitsandbytes' quantize_4bit, element by element: x·(1/absmax) in float32, clamp, first nearest code.</summary>
    private static (byte[] Packed, float[] Absmax) ScalarQuantize4Bit(float[] x, float[] code, int bs = 64)
    {
        int blocks = (x.Length + bs - 1) / bs;
        var absmax = new float[blocks];
        var idx = new int[x.Length + (x.Length % 2)];
        for (int b = 0; b < blocks; b++)
        {
            int s = b * bs, e = Math.Min(x.Length, s + bs);
            float m = 0;
            for (int i = s; i < e; i++) m = Math.Max(m, Math.Abs(x[i]));
            absmax[b] = m;
            float r = 1f / m;
            for (int i = s; i < e; i++) idx[i] = Nearest(Math.Clamp(x[i] * r, -1f, 1f), code);
        }
        if (x.Length % 2 == 1) idx[^1] = Nearest(0f, code);
        var packed = new byte[idx.Length / 2];
        for (int k = 0; k < packed.Length; k++) packed[k] = (byte)((idx[2 * k] << 4) | idx[2 * k + 1]);
        return (packed, absmax);
    }

    private static int Nearest(float v, float[] code)
    {
        int best = 0;
        for (int j = 1; j < code.Length; j++)
            if (Math.Abs(v - code[j]) < Math.Abs(v - code[best])) best = j;
        return best;
    }

    [Theory]
    [InlineData(QuantMethod.Nf4)]
    [InlineData(QuantMethod.Fp4)]
    public void RoundTripErrorPerBlockIsAtMostHalfTheWidestCodeGapTimesAbsmax(QuantMethod method)
    {
        using var gen = new Generator(3);
        using var w = torch.randn([48, 80], generator: gen) * 0.02;   // 3840 values, 60 blocks
        using var q = QuantizedWeight.Quantize(w, method);
        using var back = q.Dequantize(ScalarType.Float32);
        var code = QuantCodes.FourBit(method).Order().ToArray();
        double halfGap = code.Zip(code.Skip(1)).Max(p => p.Second - p.First) / 2;
        var x = w.data<float>().ToArray();
        var y = back.data<float>().ToArray();
        var am = q.Absmax.data<float>().ToArray();
        for (int i = 0; i < x.Length; i++)
        {
            double bound = am[i / 64] * halfGap + 1e-7;
            Assert.True(Math.Abs(x[i] - y[i]) <= bound, $"element {i}: |{x[i]} - {y[i]}| > {bound}");
        }
        // The largest magnitude in each block is a code endpoint (±1 × absmax) and comes back exactly.
        for (int b = 0; b < am.Length; b++)
        {
            int arg = Enumerable.Range(b * 64, 64).MaxBy(i => Math.Abs(x[i]));
            Assert.Equal(Math.Abs(x[arg]), Math.Abs(y[arg]));
        }
    }

    [Fact]
    public void DoubleQuantisationStoresAbsmaxAsDynamicCodesAroundTheirMean()
    {
        using var gen = new Generator(5);
        using var w = torch.randn([256, 160], generator: gen) * 0.03;   // 640 blocks of 64 -> 3 nested blocks of 256
        using var plain = QuantizedWeight.Quantize(w, QuantMethod.Nf4);
        using var dq = QuantizedWeight.Quantize(w, QuantMethod.Nf4, doubleQuant: true);
        Assert.Equal(ScalarType.Byte, dq.Absmax.dtype);
        Assert.Equal(new long[] { 640 }, dq.Absmax.shape);
        Assert.Equal(new long[] { 3 }, dq.NestedAbsmax!.shape);
        Assert.Equal(plain.Packed.data<byte>().ToArray(), dq.Packed.data<byte>().ToArray());   // same 4-bit codes
        float mean = plain.Absmax.mean().item<float>();
        Assert.Equal(mean, dq.Offset);
        // Reconstructed absmax within half the widest dynamic-code gap × the nested absmax of its 256-block.
        var d = QuantCodes.Dynamic8Bit;
        double halfGap = d.Zip(d.Skip(1)).Max(p => p.Second - p.First) / 2;
        using var rec = dq.BlockAbsmax();
        var a = plain.Absmax.data<float>().ToArray();
        var r = rec.data<float>().ToArray();
        var nested = dq.NestedAbsmax.data<float>().ToArray();
        for (int i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(a[i] - r[i]) <= nested[i / 256] * halfGap + 1e-7, $"absmax {i}: {a[i]} vs {r[i]}");
        // Nested absmax is the max |absmax - mean| per 256-block.
        for (int b = 0; b < 3; b++)
        {
            float m = a.Skip(b * 256).Take(256).Max(v => Math.Abs(v - mean));
            Assert.Equal(m, nested[b], 1e-7f);
        }
    }

    [Fact]
    public void Nf4BytesAreUnderSixteenPercentOfFp32AndDoubleQuantAboutThirteen()
    {
        using var gen = new Generator(1);
        using var w = torch.randn([512, 512], generator: gen);
        double fp32 = w.numel() * 4.0;
        using var nf4 = QuantizedWeight.Quantize(w, QuantMethod.Nf4);
        using var dq = QuantizedWeight.Quantize(w, QuantMethod.Nf4, doubleQuant: true);
        using var i8 = QuantizedWeight.Quantize(w, QuantMethod.Int8);
        Assert.Equal(0.140625, nf4.StorageBytes / fp32, 6);            // (0.5 + 4/64) / 4
        Assert.InRange(dq.StorageBytes / fp32, 0.128, 0.130);           // (0.5 + 1/64 + 4/16384) / 4 = 0.1290
        Assert.InRange(i8.StorageBytes / fp32, 0.25, 0.2521);
    }

    [Fact]
    public void Int8RowsRoundToNearestStepOfAbsmaxOver127()
    {
        using var gen = new Generator(9);
        using var w = torch.randn([16, 40], generator: gen);
        using var q = QuantizedWeight.Quantize(w, QuantMethod.Int8);
        Assert.Equal(ScalarType.Int8, q.Packed.dtype);
        var x = w.data<float>().ToArray();
        var scb = q.Absmax.data<float>().ToArray();
        var c = q.Packed.data<sbyte>().ToArray();
        for (int i = 0; i < x.Length; i++)
        {
            int row = i / 40;
            Assert.Equal(Math.Round(x[i] * (127f * (1f / scb[row])), MidpointRounding.ToEven), c[i], 0);
        }
        using var back = q.Dequantize(ScalarType.Float32);
        var y = back.data<float>().ToArray();
        for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(x[i] - y[i]) <= scb[i / 40] / 254 + 1e-6);
    }

    [Theory]
    [InlineData(QuantMethod.Nf4, false)]
    [InlineData(QuantMethod.Nf4, true)]
    [InlineData(QuantMethod.Fp4, false)]
    [InlineData(QuantMethod.Int8, false)]
    public void QuantisedLinearMultipliesByTheDequantisedWeightAndPassesInputGradients(QuantMethod method, bool dq)
    {
        using var scope = torch.NewDisposeScope();
        using var gen = new Generator(11);
        var layer = new LinearLayer(96, 40, true, torch.CPU, ScalarType.Float32);
        using (torch.no_grad()) { layer.weight.normal_(0, 0.05, gen); layer.bias!.normal_(0, 0.1, gen); }
        var w = layer.weight.detach().clone();
        var x = torch.randn([3, 5, 96], generator: gen).requires_grad_(true);
        var reference = nn.functional.linear(x.detach(), w, layer.bias!.detach());
        var q = QuantizedWeight.Quantize(w, method, dq);
        var deq = q.Dequantize(ScalarType.Float32);
        layer.SetQuantized(q, ScalarType.Float32);
        Assert.False(layer.weight.requires_grad);

        var y = layer.forward(x);
        var expected = nn.functional.linear(x.detach(), deq, layer.bias!.detach());
        Assert.True(torch.allclose(y.detach(), expected, 1e-5, 1e-5));
        // Against the fp32 layer the error is the weight's quantisation error: |y - y32| <= |x|·|W - deq|ᵀ.
        var bound = x.detach().abs().matmul((w - deq).abs().t()) + 1e-5;
        Assert.True(((y.detach() - reference).abs() <= bound).all().item<bool>());

        y.sum().backward();
        var xr = x.detach().clone().requires_grad_(true);
        nn.functional.linear(xr, deq).sum().backward();
        Assert.True(torch.allclose(x.grad!, xr.grad!, 1e-5, 1e-6));
    }
}
