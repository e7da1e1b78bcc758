using Peft.Training.Training;
using static TorchSharp.torch;

namespace Peft.Tests.Training;

/// <summary>bf16 is chosen only where it is not much slower than fp32 (the rates measured on the project's machines).</summary>
public class MatmulRateTests
{
    [Theory]
    [InlineData(139, 0.3, false)]   // AVX2-only EPYC: libtorch falls back to a scalar bf16 kernel
    [InlineData(280, 163, true)]    // AVX-512 Xeon
    [InlineData(185, 390, true)]    // native bf16 (avx512_bf16)
    [InlineData(100, 49, false)]
    [InlineData(100, 50, true)]
    public void Bf16DecisionFollowsTheMeasuredRates(double fp32, double bf16, bool expected) =>
        Assert.Equal(expected, MatmulRate.Bf16Worthwhile(fp32, bf16));

    [Fact]
    public void ProbeMeasuresARate()
    {
        double rate = MatmulRate.Measure(ScalarType.Float32, TimeSpan.FromSeconds(0.2), maxN: 256);
        Assert.True(double.IsFinite(rate) && rate > 0, $"rate {rate}");
    }
}
