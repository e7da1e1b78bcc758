namespace Peft.Core.IO;

/// <summary>
/// One tensor of a safetensors header. <see cref="DType"/> is the safetensors spelling ("F32", "BF16", ...);
/// offsets are relative to the start of the data section, as in the file.
/// </summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long DataBegin, long DataEnd)
{
    public long ByteLength => DataEnd - DataBegin;

    /// <summary>Product of <see cref="Shape"/>; 1 for a scalar (empty shape).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (var d in Shape) n *= d;
            return n;
        }
    }
}
