using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.IO;

/// <summary>Whole-file safetensors load and save.</summary>
public static class Safetensors
{
    private static readonly IReadOnlyDictionary<string, string> DefaultMetadata =
        new Dictionary<string, string> { ["format"] = "pt" };

    /// <summary>All tensors of a file, keyed by name (in header order), each owning its memory.</summary>
    public static Dictionary<string, Tensor> Load(string path, Device? device = null)
    {
        using var file = SafetensorsFile.Open(path);
        var result = new Dictionary<string, Tensor>(file.Entries.Count, StringComparer.Ordinal);
        try
        {
            foreach (var entry in file.Entries)
                result.Add(entry.Name, file.Load(entry.Name, device));
        }
        catch
        {
            foreach (var tensor in result.Values) tensor.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>
    /// Writes tensors the way the Rust <c>safetensors</c> crate (Python <c>save_file</c>) does, so files are
    /// byte-identical to Hugging Face's: compact header with <c>__metadata__</c> first, tensors sorted by dtype
    /// (the crate's enum order, descending: 8-byte types first) then by name, data laid out in that order, header
    /// space-padded so the data section starts 8-aligned. <paramref name="metadata"/> defaults to
    /// <c>{"format":"pt"}</c> (what transformers/peft pass); an explicitly empty map writes no <c>__metadata__</c>
    /// at all (like <c>save_file(..., metadata=None)</c>).
    /// The write is atomic: everything is validated first, then written to a temporary file in the same folder,
    /// flushed to disk and renamed over <paramref name="path"/>, so a failure never leaves a partial file.
    /// </summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        SafetensorsFile.EnsureLittleEndian();
        var full = Path.GetFullPath(path);

        var items = Prepare(full, tensors);
        var entries = new List<SafetensorsEntry>(items.Count);
        long offset = 0;
        foreach (var item in items)
        {
            var bytes = checked(item.Tensor.numel() * item.Info.Size);
            entries.Add(new SafetensorsEntry(item.Name, item.Info.Name, item.Tensor.shape, offset, offset + bytes));
            offset += bytes;
        }
        metadata ??= DefaultMetadata;
        var header = SafetensorsHeader.Serialize(entries, metadata.Count == 0 ? null : metadata);
        WriteAtomically(full, header, offset, items);
    }

    private sealed record Item(string Name, byte[] Utf8Name, Tensor Tensor, SafetensorsDTypes.Info Info);

    /// <summary>Validates every input and sorts into file order; touches no file.</summary>
    private static List<Item> Prepare(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        var items = new List<Item>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors)
        {
            if (name is null)
                throw new ArgumentException($"Cannot save '{path}': a tensor name is null.", nameof(tensors));
            if (name == SafetensorsHeader.MetadataKey)
                throw new ArgumentException($"Cannot save '{path}': '{name}' is reserved for metadata.", nameof(tensors));
            if (!names.Add(name))
                throw new ArgumentException($"Cannot save '{path}': duplicate tensor name '{name}'.", nameof(tensors));
            if (tensor is null || tensor.IsInvalid)
                throw new ArgumentException($"Cannot save '{path}': tensor '{name}' is null or disposed.", nameof(tensors));
            var info = TorchDTypes.From(tensor.dtype)
                ?? throw new NotSupportedException(
                    $"Cannot save '{path}': tensor '{name}' has dtype {tensor.dtype}, which safetensors cannot store.");
            items.Add(new Item(name, Encoding.UTF8.GetBytes(name), tensor, info));
        }
        // Rust compares dtype enum values, then names as UTF-8 bytes (not UTF-16 code units).
        items.Sort((a, b) =>
        {
            var byType = b.Info.Rank.CompareTo(a.Info.Rank);
            return byType != 0 ? byType : a.Utf8Name.AsSpan().SequenceCompareTo(b.Utf8Name);
        });
        return items;
    }

    private static void WriteAtomically(string path, byte[] header, long dataLength, List<Item> items)
    {
        var temp = path + ".tmp-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var total = 8 + header.Length + dataLength;
        try
        {
            using (var stream = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
                BufferSize = 1 << 20,
                PreallocationSize = total,
            }))
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
                stream.Write(prefix);
                stream.Write(header);
                using (torch.no_grad())
                {
                    foreach (var item in items)
                    {
                        using var data = ToCpuContiguous(item.Tensor);
                        TensorBytes.WriteTo(data, stream);
                    }
                }
                if (stream.Position != total)
                    throw new InvalidOperationException(
                        $"Saving '{path}': wrote {stream.Position} bytes, expected {total}; was a tensor resized concurrently?");
                // Durable before the rename, so a crash leaves either the old file or the complete new one.
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>A new handle on contiguous CPU data (a copy only when the input is elsewhere or strided).</summary>
    private static Tensor ToCpuContiguous(Tensor tensor)
    {
        if (tensor.device_type == DeviceType.CPU)
            return tensor.contiguous();
        using var cpu = tensor.cpu();
        return cpu.contiguous();
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Best effort: the original error matters more than a leftover temp file.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
