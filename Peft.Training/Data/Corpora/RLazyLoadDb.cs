using System.Buffers.Binary;
using System.IO.Compression;

namespace Peft.Training.Data.Corpora;

/// <summary>
/// An R lazy-load database: the <c>NAME.rdx</c>/<c>NAME.rdb</c> pair an installed package keeps its datasets in
/// (data/Rdata.rdx). The index is a compressed serialized <c>list(variables=, references=, compressed=)</c> whose
/// variables map each object name to an integer (offset, length) into the .rdb; every .rdb record is a 4-byte
/// big-endian uncompressed length followed by the compressed serialization of one object.
/// </summary>
public sealed class RLazyLoadDb
{
    private readonly byte[] _rdb;
    private readonly Dictionary<string, (int Offset, int Length)> _variables = new(StringComparer.Ordinal);
    private readonly int _compression;

    /// <summary>Object names in index order.</summary>
    public IReadOnlyList<string> Names { get; }

    private RLazyLoadDb(byte[] rdx, byte[] rdb, string rdxPath)
    {
        _rdb = rdb;
        if (RXdrReader.Read(Inflate(rdx, rdxPath)) is not RList index || index["variables"] is not RList vars
            || vars.Names is not { } names)
            throw new PeftUserException($"{rdxPath}: not an R lazy-load index (no named 'variables' list).", UserErrorKind.Invalid);
        var order = new List<string>();
        for (int i = 0; i < vars.Items.Count; i++)
        {
            if (names[i] is not { } name || vars.Items[i] is not RInts { Values.Count: 2 } pos)
                throw new PeftUserException($"{rdxPath}: index entry {i} is not a named (offset, length) pair.", UserErrorKind.Invalid);
            _variables[name] = (pos.Values[0], pos.Values[1]);
            order.Add(name);
        }
        Names = order;
        // compressed = TRUE means zlib; 2 and 3 (bzip2, xz) put a type byte before the data.
        _compression = index["compressed"] is RInts { Values.Count: 1 } c ? c.Values[0] : 1;
    }

    /// <summary>Opens <paramref name="rdxPath"/> and the .rdb next to it.</summary>
    public static RLazyLoadDb Open(string rdxPath)
    {
        ArgumentNullException.ThrowIfNull(rdxPath);
        string rdbPath = Path.ChangeExtension(rdxPath, ".rdb");
        if (!File.Exists(rdxPath)) throw new PeftUserException($"R index '{rdxPath}' does not exist.", UserErrorKind.NotFound);
        if (!File.Exists(rdbPath)) throw new PeftUserException($"R database '{rdbPath}' does not exist.", UserErrorKind.NotFound);
        return new RLazyLoadDb(File.ReadAllBytes(rdxPath), File.ReadAllBytes(rdbPath), rdxPath);
    }

    /// <summary>From in-memory bytes (tests build tiny databases by hand).</summary>
    public static RLazyLoadDb FromBytes(byte[] rdx, byte[] rdb) => new(rdx, rdb, "<rdx>");

    /// <summary>Reads and deserializes one object.</summary>
    /// <exception cref="KeyNotFoundException">No object of that name.</exception>
    public RObject? Read(string name)
    {
        if (!_variables.TryGetValue(name, out var at))
            throw new KeyNotFoundException($"R database has no object '{name}' (has: {string.Join(", ", Names)}).");
        if (at.Offset < 0 || at.Length < 5 || (long)at.Offset + at.Length > _rdb.Length)
            throw new PeftUserException($"R database entry '{name}' lies outside the .rdb file.", UserErrorKind.Invalid);
        var record = _rdb.AsSpan(at.Offset, at.Length);
        int size = BinaryPrimitives.ReadInt32BigEndian(record);
        byte[] data = _compression switch
        {
            1 => Zlib(record[4..], size),
            2 or 3 when record[4] == (byte)'0' => record[5..].ToArray(),
            2 or 3 when record[4] == (byte)'1' => Zlib(record[5..], size),
            _ => throw new PeftUserException(
                $"R database entry '{name}' uses compression type {_compression} ('{(char)record[4]}'); only zlib is supported.", UserErrorKind.Invalid),
        };
        if (data.Length != size)
            throw new PeftUserException($"R database entry '{name}' inflates to {data.Length} bytes, expected {size}.", UserErrorKind.Invalid);
        return RXdrReader.Read(data);
    }

    private static byte[] Zlib(ReadOnlySpan<byte> compressed, int expected)
    {
        using var input = new MemoryStream(compressed.ToArray());
        using var z = new ZLibStream(input, CompressionMode.Decompress);
        using var output = new MemoryStream(Math.Max(expected, 0));
        z.CopyTo(output);
        return output.ToArray();
    }

    // saveRDS writes the index gzip-compressed; accept zlib records and plain serializations too.
    private static byte[] Inflate(byte[] bytes, string path)
    {
        try
        {
            if (bytes is [0x1F, 0x8B, ..])
            {
                using var gz = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
                using var ms = new MemoryStream();
                gz.CopyTo(ms);
                return ms.ToArray();
            }
            if (bytes.Length > 6 && bytes[4] == 0x78) return Zlib(bytes.AsSpan(4), BinaryPrimitives.ReadInt32BigEndian(bytes));
            return bytes;
        }
        catch (InvalidDataException e)
        {
            throw new PeftUserException($"{path}: cannot decompress: {e.Message}", UserErrorKind.Invalid, e);
        }
    }
}
