using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Nn;

/// <summary>
/// <c>torch.arange</c> with its Scalars held: TorchSharp 0.107's overloads without a step make the missing start/step
/// Scalars inside and leave them to the finalizer, which can free one during the native call (analyzer PEFT0001).
/// </summary>
public static class TensorRanges
{
    /// <summary>int64 [start, end) on <paramref name="device"/>.</summary>
    public static Tensor Of(long start, long end, Device? device)
    {
        using Scalar first = start, stop = end, step = 1L;
        return torch.arange(first, stop, step, ScalarType.Int64, device);
    }
}
