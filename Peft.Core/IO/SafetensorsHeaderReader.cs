using System.Buffers.Binary;

namespace Peft.Core.IO;

/// <summary>The parsed, validated header of a safetensors file: tensor names, dtypes, shapes and offsets.</summary>
public sealed record SafetensorsHeaderInfo(string Path, IReadOnlyList<SafetensorsEntry> Entries,
    IReadOnlyDictionary<string, string> Metadata, long DataStart, long FileLength)
{
    public long ParameterCount => Entries.Sum(e => e.ElementCount);
}

/// <summary>
/// Reads only the header of a safetensors file (no tensor data), with the same checks as the engine's loader, so
/// torch-free code (the catalog's upload validation) sees exactly the errors a load would raise.
/// </summary>
public static class SafetensorsHeaderReader
{
    public static SafetensorsHeaderInfo Read(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        var length = stream.Length;
        SafetensorsHeader.CheckFileLength(full, length);
        Span<byte> prefix = stackalloc byte[8];
        stream.ReadExactly(prefix);
        var n = SafetensorsHeader.CheckHeaderLength(full, BinaryPrimitives.ReadUInt64LittleEndian(prefix), length);
        var header = new byte[n];
        stream.ReadExactly(header);
        var dataStart = 8 + (long)n;
        var parsed = SafetensorsHeader.Parse(full, header, length - dataStart);
        return new SafetensorsHeaderInfo(full, parsed.Entries, parsed.Metadata.ToDictionary(), dataStart, length);
    }
}
