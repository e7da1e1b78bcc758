using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Peft.Tests.Data;

/// <summary>
/// Hand-assembles R XDR serializations (big-endian ints, flag words as in R's serialize.c) so the reader is
/// tested against bytes written independently of it.
/// </summary>
internal sealed class RBlob
{
    public const int Utf8 = 1 << 3, Latin1 = 1 << 2, Ascii = 1 << 6;
    private readonly MemoryStream _ms = new();

    /// <summary>"X\n", then version, writer and reader R versions, and (version 3) the native encoding.</summary>
    public static RBlob Header(int version = 3)
    {
        var b = new RBlob();
        b._ms.Write("X\n"u8);
        b.Int(version).Int(0x00040201).Int(0x00030500);
        if (version == 3) b.Int(5).Bytes("UTF-8"u8.ToArray());
        return b;
    }

    public RBlob Int(int v)
    {
        Span<byte> s = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(s, v);
        _ms.Write(s);
        return this;
    }

    public RBlob Bytes(byte[] b)
    {
        _ms.Write(b);
        return this;
    }

    /// <summary>Flag word: type, "has attributes" bit 9, "has tag" bit 10, levels from bit 12.</summary>
    public RBlob Flags(int type, bool attr = false, bool tag = false, int levels = 0) =>
        Int(type | (attr ? 1 << 9 : 0) | (tag ? 1 << 10 : 0) | (levels << 12));

    public RBlob CharSxp(string? s, int levels = Utf8, Encoding? encoding = null)
    {
        if (s is null) return Flags(9).Int(-1);
        var bytes = (encoding ?? Encoding.UTF8).GetBytes(s);
        return Flags(9, levels: levels).Int(bytes.Length).Bytes(bytes);
    }

    public RBlob Strings(params string?[] values)
    {
        Flags(16).Int(values.Length);
        foreach (var v in values) CharSxp(v, v is null ? 0 : Ascii);
        return this;
    }

    public RBlob Symbol(string name) => Flags(1).CharSxp(name, Ascii);

    /// <summary>An attribute pairlist with one "names" cell; <paramref name="namesRef"/> reuses symbol #n.</summary>
    public RBlob NamesAttribute(int namesRef, params string[] names)
    {
        Flags(2, tag: true);
        if (namesRef > 0) Int((namesRef << 8) | 255);
        else Symbol("names");
        Strings(names);
        return Nil();
    }

    public RBlob Nil() => Int(254);

    public byte[] ToArray() => _ms.ToArray();

    public static byte[] Zlib(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Optimal)) z.Write(data);
        return ms.ToArray();
    }

    public static byte[] Gzip(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var z = new GZipStream(ms, CompressionLevel.Optimal)) z.Write(data);
        return ms.ToArray();
    }

    /// <summary>
    /// A lazy-load database (rdx, rdb) holding character vectors, laid out as R's makeLazyLoadDB does: index
    /// list(variables = list(name = c(offset, length)), references = list(), compressed = TRUE), gzip-compressed.
    /// </summary>
    public static (byte[] Rdx, byte[] Rdb) LazyLoadDb(params (string Name, string?[] Lines)[] objects)
    {
        var rdb = new MemoryStream();
        var positions = new List<(int Offset, int Length)>();
        foreach (var (_, lines) in objects)
        {
            var payload = Header().Strings(lines).ToArray();
            var z = Zlib(payload);
            var len = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(len, payload.Length);
            positions.Add(((int)rdb.Position, 4 + z.Length));
            rdb.Write(len);
            rdb.Write(z);
        }
        var index = Header().Flags(19, attr: true).Int(3);
        index.Flags(19, attr: true).Int(objects.Length);
        foreach (var (offset, length) in positions) index.Flags(13).Int(2).Int(offset).Int(length);
        index.NamesAttribute(0, objects.Select(o => o.Name).ToArray());
        index.Flags(19, attr: true).Int(0).NamesAttribute(1);                     // references: empty named list
        index.Flags(10).Int(1).Int(1);                                            // compressed = TRUE
        index.NamesAttribute(1, "variables", "references", "compressed");
        return (Gzip(index.ToArray()), rdb.ToArray());
    }
}
