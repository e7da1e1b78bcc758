using System.Buffers.Binary;
using System.Text;

namespace Peft.Training.Data.Corpora;

/// <summary>
/// A value read from R's serialization format. Only the data types the corpus packages use are modelled:
/// character, logical, integer, double and raw vectors, generic lists (VECSXP), pairlists and symbols.
/// </summary>
public abstract class RObject
{
    /// <summary>Attributes in order ("names", "class", ...); empty when the value had none.</summary>
    public IReadOnlyList<(string Tag, RObject? Value)> Attributes { get; internal set; } = [];

    public RObject? Attribute(string tag)
    {
        foreach (var (t, v) in Attributes)
            if (t == tag) return v;
        return null;
    }

    /// <summary>The "names" attribute, or null.</summary>
    public IReadOnlyList<string?>? Names => (Attribute("names") as RStrings)?.Values;
}

/// <summary>STRSXP; NA_character_ is null.</summary>
public sealed class RStrings(string?[] values) : RObject
{
    public IReadOnlyList<string?> Values { get; } = values;
}

/// <summary>VECSXP (R's list()).</summary>
public sealed class RList(RObject?[] items) : RObject
{
    public IReadOnlyList<RObject?> Items { get; } = items;

    /// <summary>The element named <paramref name="name"/>, or null.</summary>
    public RObject? this[string name]
    {
        get
        {
            var names = Names;
            if (names is null) return null;
            for (int i = 0; i < names.Count && i < Items.Count; i++)
                if (names[i] == name) return Items[i];
            return null;
        }
    }
}

/// <summary>INTSXP or LGLSXP (both 32-bit; NA is int.MinValue, TRUE is 1).</summary>
public sealed class RInts(int[] values, bool logical) : RObject
{
    public IReadOnlyList<int> Values { get; } = values;
    public bool IsLogical { get; } = logical;
}

public sealed class RReals(double[] values) : RObject
{
    public IReadOnlyList<double> Values { get; } = values;
}

public sealed class RRaw(byte[] values) : RObject
{
    public IReadOnlyList<byte> Values { get; } = values;
}

public sealed class RSymbol(string name) : RObject
{
    public string Name { get; } = name;
}

/// <summary>A pairlist (LISTSXP), flattened into its (tag, value) cells.</summary>
public sealed class RPairList(List<(string? Tag, RObject? Value)> cells) : RObject
{
    public IReadOnlyList<(string? Tag, RObject? Value)> Cells { get; } = cells;
}

/// <summary>A singleton R uses as a marker (the global environment, the missing argument, ...).</summary>
public sealed class RMarker(string name) : RObject
{
    public string Name { get; } = name;
}

/// <summary>
/// Reads R's XDR serialization (what <c>serialize()</c>, <c>saveRDS()</c> and lazy-load databases store), versions 2
/// and 3. This is R's <c>ReadItem</c> from src/main/serialize.c cut down to data: closures, environments, byte code
/// and ALTREP objects are rejected with <see cref="InvalidDataException"/>, since text corpora never need them.
/// </summary>
public sealed class RXdrReader
{
    // SEXP types and the pseudo-types of serialize.c.
    private const int SymSxp = 1, ListSxp = 2, CharSxp = 9, LglSxp = 10, IntSxp = 13, RealSxp = 14, StrSxp = 16,
        VecSxp = 19, ExprSxp = 20, RawSxp = 24;
    private const int RefSxp = 255, NilValueSxp = 254, GlobalEnvSxp = 253, UnboundValueSxp = 252, MissingArgSxp = 251,
        BaseNamespaceSxp = 250, EmptyEnvSxp = 242, BaseEnvSxp = 241;
    // CHARSXP "levels" bits giving the string's encoding.
    private const int Latin1Mask = 1 << 2, Utf8Mask = 1 << 3;

    private readonly byte[] _data;
    private int _pos;
    private readonly List<RObject> _refs = [];

    private RXdrReader(byte[] data) => _data = data;

    /// <summary>Parses one serialized object ("X\n" header included); null is R's NULL.</summary>
    public static RObject? Read(byte[] serialized)
    {
        ArgumentNullException.ThrowIfNull(serialized);
        var r = new RXdrReader(serialized);
        r.ReadHeader();
        return r.ReadItem(0);
    }

    private void ReadHeader()
    {
        if (_data.Length < 2 || _data[0] != (byte)'X' || _data[1] != (byte)'\n')
            throw new PeftUserException(_data.Length >= 2 && _data[1] == (byte)'\n'
                ? $"R serialization format '{(char)_data[0]}' is not supported, only XDR ('X')."
                : "Not an R serialization (expected the 'X\\n' XDR header).", UserErrorKind.Invalid);
        _pos = 2;
        int version = ReadInt();
        ReadInt(); // R version that wrote it
        ReadInt(); // minimal R version needed to read it
        if (version == 3)
        {
            int n = ReadInt();
            Take(n);   // native encoding name; strings carry their own encoding flags
        }
        else if (version != 2)
            throw new PeftUserException($"R serialization version {version} is not supported (2 or 3).", UserErrorKind.Invalid);
    }

    private RObject? ReadItem(int depth)
    {
        // Nested lists are shallow in data; a deep chain means a corrupt or hostile blob.
        if (depth > 512) throw new PeftUserException("R serialization nested too deeply.", UserErrorKind.Invalid);
        int flags = ReadInt();
        int type = flags & 0xFF;
        int levels = flags >> 12;
        bool hasAttr = (flags & (1 << 9)) != 0, hasTag = (flags & (1 << 10)) != 0;
        switch (type)
        {
            case NilValueSxp: return null;
            case GlobalEnvSxp: return new RMarker("R_GlobalEnv");
            case EmptyEnvSxp: return new RMarker("R_EmptyEnv");
            case BaseEnvSxp: return new RMarker("R_BaseEnv");
            case BaseNamespaceSxp: return new RMarker("R_BaseNamespace");
            case UnboundValueSxp: return new RMarker("R_UnboundValue");
            case MissingArgSxp: return new RMarker("R_MissingArg");
            case RefSxp:
            {
                int index = flags >> 8;
                if (index == 0) index = ReadInt();
                if (index < 1 || index > _refs.Count)
                    throw new PeftUserException($"R serialization refers to object {index}, but only {_refs.Count} were read.", UserErrorKind.Invalid);
                return _refs[index - 1];
            }
            case SymSxp:
            {
                // A symbol is its CHARSXP name; later uses are REFSXP back-references to it.
                int charFlags = ReadInt();
                if ((charFlags & 0xFF) != CharSxp) throw new PeftUserException("R symbol without a CHARSXP name.", UserErrorKind.Invalid);
                var sym = new RSymbol(ReadCharsxp(charFlags >> 12) ?? "NA");
                _refs.Add(sym);
                return sym;
            }
            case ListSxp: return ReadPairList(hasAttr, hasTag, depth);
            case CharSxp:
            {
                // A bare CHARSXP only occurs inside vectors; expose it as a length-1 character vector.
                var s = new RStrings([ReadCharsxp(levels)]);
                if (hasAttr) ReadItem(depth + 1);
                return s;
            }
        }

        RObject value = type switch
        {
            LglSxp or IntSxp => ReadInts(type == LglSxp),
            RealSxp => ReadReals(),
            RawSxp => new RRaw(Take(ReadLength()).ToArray()),
            StrSxp => ReadStrings(depth),
            VecSxp or ExprSxp => ReadList(depth),
            _ => throw new PeftUserException($"R object type {type} is not supported by this reader (data vectors and lists only).", UserErrorKind.Invalid),
        };
        if (hasAttr) value.Attributes = ToAttributes(ReadItem(depth + 1));
        return value;
    }

    // R recurses on the CDR; reading the chain in a loop keeps long pairlists off the call stack.
    private RPairList ReadPairList(bool hasAttr, bool hasTag, int depth)
    {
        var cells = new List<(string?, RObject?)>();
        List<(string, RObject?)>? attrs = null;
        while (true)
        {
            if (hasAttr)
            {
                var a = ToAttributes(ReadItem(depth + 1));
                attrs ??= [.. a];
            }
            string? tag = hasTag ? TagName(ReadItem(depth + 1)) : null;
            cells.Add((tag, ReadItem(depth + 1)));
            int flags = PeekInt();
            if ((flags & 0xFF) != ListSxp) break;
            _pos += 4;
            hasAttr = (flags & (1 << 9)) != 0;
            hasTag = (flags & (1 << 10)) != 0;
        }
        var tail = ReadItem(depth + 1);
        if (tail is not null) throw new PeftUserException("R pairlist does not end in NULL.", UserErrorKind.Invalid);
        return new RPairList(cells) { Attributes = attrs ?? [] };
    }

    private static string? TagName(RObject? tag) => tag switch
    {
        RSymbol s => s.Name,
        null => null,
        _ => throw new PeftUserException("R pairlist tag is not a symbol.", UserErrorKind.Invalid),
    };

    private static List<(string, RObject?)> ToAttributes(RObject? item)
    {
        if (item is not RPairList list) throw new PeftUserException("R attributes are not a pairlist.", UserErrorKind.Invalid);
        return list.Cells.Select(c => (c.Tag ?? "", c.Value)).ToList();
    }

    private RStrings ReadStrings(int depth)
    {
        var values = new string?[ReadLength()];
        for (int i = 0; i < values.Length; i++)
        {
            int flags = ReadInt();
            if ((flags & 0xFF) != CharSxp)
                throw new PeftUserException($"R character vector element {i} is not a CHARSXP.", UserErrorKind.Invalid);
            values[i] = ReadCharsxp(flags >> 12);
            if ((flags & (1 << 9)) != 0) ReadItem(depth + 1); // old writers attached attributes to strings; R ignores them
        }
        return new RStrings(values);
    }

    // Length -1 is NA_character_. Unflagged strings are taken as UTF-8 (the packages declare Encoding: UTF-8).
    private string? ReadCharsxp(int levels)
    {
        int n = ReadInt();
        if (n == -1) return null;
        var bytes = Take(n);
        return (levels & Latin1Mask) != 0 && (levels & Utf8Mask) == 0
            ? Encoding.Latin1.GetString(bytes)
            : Encoding.UTF8.GetString(bytes);
    }

    private RList ReadList(int depth)
    {
        var items = new RObject?[ReadLength()];
        for (int i = 0; i < items.Length; i++) items[i] = ReadItem(depth + 1);
        return new RList(items);
    }

    private RInts ReadInts(bool logical)
    {
        int n = ReadLength();
        var span = Take(checked(n * 4));
        var values = new int[n];
        for (int i = 0; i < n; i++) values[i] = BinaryPrimitives.ReadInt32BigEndian(span.Slice(i * 4));
        return new RInts(values, logical);
    }

    private RReals ReadReals()
    {
        int n = ReadLength();
        var span = Take(checked(n * 8));
        var values = new double[n];
        for (int i = 0; i < n; i++) values[i] = BinaryPrimitives.ReadDoubleBigEndian(span.Slice(i * 8));
        return new RReals(values);
    }

    // Vectors of 2^31 or more elements store -1 and then the length as two ints; none fit in memory here anyway.
    private int ReadLength()
    {
        int n = ReadInt();
        if (n == -1)
        {
            long hi = (uint)ReadInt(), lo = (uint)ReadInt();
            long len = (hi << 32) | lo;
            throw new PeftUserException($"R vector of {len} elements is too long for this reader.", UserErrorKind.Invalid);
        }
        if (n < 0) throw new PeftUserException($"R vector length {n} is invalid.", UserErrorKind.Invalid);
        return n;
    }

    private int ReadInt()
    {
        int v = PeekInt();
        _pos += 4;
        return v;
    }

    private int PeekInt()
    {
        if (_pos + 4 > _data.Length) throw new PeftUserException("R serialization is truncated.", UserErrorKind.Invalid);
        return BinaryPrimitives.ReadInt32BigEndian(_data.AsSpan(_pos));
    }

    private ReadOnlySpan<byte> Take(int n)
    {
        if (n < 0 || _pos + (long)n > _data.Length) throw new PeftUserException("R serialization is truncated.", UserErrorKind.Invalid);
        var span = _data.AsSpan(_pos, n);
        _pos += n;
        return span;
    }
}
