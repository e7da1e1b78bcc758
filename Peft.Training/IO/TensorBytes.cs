using static TorchSharp.torch;

namespace Peft.Training.IO;

/// <summary>Raw byte copies between native memory / streams and contiguous CPU tensors.</summary>
internal static unsafe class TensorBytes
{
    // Tensor.bytes is an int-length Span, so tensors over 2 GiB are handled in slices of this size.
    private const long ChunkBytes = 1L << 30;

    /// <summary>Fills a contiguous CPU tensor with numel * element_size bytes read from <paramref name="source"/>.</summary>
    public static void CopyFrom(byte* source, Tensor destination)
    {
        var total = destination.numel();
        if (total == 0) return;
        var item = destination.element_size();
        if (total * item <= ChunkBytes)
        {
            var span = destination.bytes;
            new ReadOnlySpan<byte>(source, span.Length).CopyTo(span);
            return;
        }
        using var flat = destination.view(-1);
        var step = ChunkBytes / item;
        for (long i = 0; i < total; i += step)
        {
            using var part = flat.narrow(0, i, Math.Min(step, total - i));
            var span = part.bytes;
            new ReadOnlySpan<byte>(source + i * item, span.Length).CopyTo(span);
        }
    }

    /// <summary>Writes the raw bytes of a contiguous CPU tensor.</summary>
    public static void WriteTo(Tensor source, Stream stream)
    {
        var total = source.numel();
        if (total == 0) return;
        var item = source.element_size();
        if (total * item <= ChunkBytes)
        {
            stream.Write(source.bytes);
            return;
        }
        using var flat = source.view(-1);
        var step = ChunkBytes / item;
        for (long i = 0; i < total; i += step)
        {
            using var part = flat.narrow(0, i, Math.Min(step, total - i));
            stream.Write(part.bytes);
        }
    }
}
