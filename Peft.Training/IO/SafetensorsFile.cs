using System.Buffers.Binary;
using System.Collections.ObjectModel;
using System.IO.MemoryMappedFiles;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.IO;

/// <summary>
/// A read-only, memory-mapped safetensors file. The whole header is validated on <see cref="Open"/>, so a file
/// that opens can be loaded from without format errors. Tensors are copied out of the map on demand.
/// Loads may run concurrently from several threads, but not concurrently with <see cref="Dispose"/>.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _base;
    private readonly long _fileLength;
    private readonly long _dataStart;
    private readonly Dictionary<string, SafetensorsEntry> _byName;

    private SafetensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePointer,
        long fileLength, long dataStart, SafetensorsHeader.Parsed parsed)
    {
        Path = path;
        _map = map;
        _view = view;
        _base = basePointer;
        _fileLength = fileLength;
        _dataStart = dataStart;
        Entries = parsed.Entries.AsReadOnly();
        Metadata = new ReadOnlyDictionary<string, string>(parsed.Metadata);
        _byName = parsed.Entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    /// <summary>Full path of the file.</summary>
    public string Path { get; }

    /// <summary>The <c>__metadata__</c> map in header order; empty when the header has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Tensors in header order (for files written by the safetensors writers, also data order).</summary>
    public IReadOnlyList<SafetensorsEntry> Entries { get; }

    /// <summary>Byte offset of the data section from the start of the file (8 + header length).</summary>
    public long DataStart => _dataStart;

    public static SafetensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        EnsureLittleEndian();
        var full = System.IO.Path.GetFullPath(path);
        // FileShare.Delete lets a writer atomically replace the file while it is mapped (the map keeps the old inode).
        var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        var length = stream.Length;
        try { SafetensorsHeader.CheckFileLength(full, length); }
        catch { stream.Dispose(); throw; }

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        byte* pointer = null;
        try
        {
            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read,
                HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            var basePointer = pointer + view.PointerOffset;

            var n = SafetensorsHeader.CheckHeaderLength(full,
                BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(basePointer, 8)), length);
            var header = new ReadOnlySpan<byte>(basePointer + 8, n).ToArray();
            var dataStart = 8 + (long)n;
            var parsed = SafetensorsHeader.Parse(full, header, length - dataStart);
            return new SafetensorsFile(full, map, view, basePointer, length, dataStart, parsed);
        }
        catch
        {
            if (pointer != null) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            if (map is null) stream.Dispose();
            else map.Dispose(); // owns the stream
            throw;
        }
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public SafetensorsEntry this[string name] =>
        _byName.TryGetValue(name, out var entry)
            ? entry
            : throw new KeyNotFoundException($"Tensor '{name}' not found in safetensors file '{Path}' ({_byName.Count} tensors).");

    /// <summary>
    /// A new CPU tensor that owns its memory, copied from the map; then cast to <paramref name="dtype"/> and/or
    /// moved to <paramref name="device"/> when given (the intermediate is disposed).
    /// </summary>
    public Tensor Load(string name, Device? device = null, ScalarType? dtype = null)
    {
        var entry = this[name];
        var type = RequireScalarType(entry, out _);
        var source = DataPointer(entry);
        var tensor = torch.empty(entry.Shape, type);
        try
        {
            TensorBytes.CopyFrom(source, tensor);
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
        return ConvertOwned(tensor, device, dtype);
    }

    /// <summary>
    /// A zero-copy CPU tensor backed by a private (copy-on-write) mapping of the file via <c>torch.from_file</c>:
    /// pages are read lazily and writes to the tensor never reach the file. The mapping lives as long as the tensor,
    /// independent of this object. Falls back to <see cref="Load"/> when the data is not element-aligned in the file
    /// or the tensor is empty. Do not truncate the file in place while such tensors live (replacing it, as
    /// <see cref="Safetensors.Save"/> does, is fine).
    /// </summary>
    public Tensor LoadMapped(string name)
    {
        var entry = this[name];
        var type = RequireScalarType(entry, out var size);
        ThrowIfDisposed();
        var absolute = _dataStart + entry.DataBegin;
        if (entry.ByteLength == 0 || absolute % size != 0)
            return Load(name);
        using var whole = torch.from_file(Path, shared: false, size: _fileLength / size, dtype: type);
        using var part = whole.narrow(0, absolute / size, entry.ElementCount);
        return part.view(entry.Shape);
    }

    /// <summary>Raw bytes of a tensor inside the map; valid until this object is disposed.</summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var entry = this[name];
        if (entry.ByteLength > int.MaxValue)
            throw new PeftUserException($"Tensor '{name}' in '{Path}' is {entry.ByteLength} bytes, too large for a span.", UserErrorKind.TooLarge);
        return new ReadOnlySpan<byte>(DataPointer(entry), (int)entry.ByteLength);
    }

    public void Dispose()
    {
        if (_base == null) return;
        _base = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    private byte* DataPointer(SafetensorsEntry entry)
    {
        ThrowIfDisposed();
        return _base + _dataStart + entry.DataBegin;
    }

    private ScalarType RequireScalarType(SafetensorsEntry entry, out int size)
    {
        var info = SafetensorsDTypes.TryParse(entry.DType)!; // validated by Open
        size = info.Size;
        return TorchDTypes.ToScalarType(entry.DType)
            ?? throw new PeftUserException(
                $"Tensor '{entry.Name}' in '{Path}' has dtype {entry.DType}, which TorchSharp cannot represent.");
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_base == null, this);

    /// <summary>Casts/moves a tensor this code owns, disposing it when a new tensor replaces it.</summary>
    internal static Tensor ConvertOwned(Tensor tensor, Device? device, ScalarType? dtype)
    {
        var type = dtype ?? tensor.dtype;
        var move = device is not null && device.type != DeviceType.CPU;
        if (type == tensor.dtype && !move)
            return tensor;
        try
        {
            return move ? tensor.to(type, device!) : tensor.to_type(type);
        }
        finally
        {
            tensor.Dispose();
        }
    }

    internal static void EnsureLittleEndian()
    {
        // safetensors data is little-endian and copied verbatim.
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors I/O requires a little-endian machine.");
    }
}
