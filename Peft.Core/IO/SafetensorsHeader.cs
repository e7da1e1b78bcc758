using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Peft.Core.IO;

/// <summary>
/// Parses, validates and writes the JSON header. Validation mirrors the Rust <c>safetensors</c> crate (the reference
/// reader): offsets must tile the data section exactly, in offset order, with no holes, overlaps or trailing bytes.
/// </summary>
internal static class SafetensorsHeader
{
    /// <summary>Same cap as the Rust crate; a larger length prefix is a corrupt (or hostile) file.</summary>
    public const long MaxHeaderSize = 100_000_000;
    public const string MetadataKey = "__metadata__";

    /// <summary>A file must at least hold the 8-byte length prefix.</summary>
    public static void CheckFileLength(string path, long length)
    {
        if (length < 8)
            throw Fail(path, $"file is {length} bytes, shorter than the 8-byte header length prefix");
    }

    /// <summary>The header length prefix <paramref name="n"/>, checked against the cap and the file's size.</summary>
    public static int CheckHeaderLength(string path, ulong n, long fileLength)
    {
        if (n > MaxHeaderSize)
            throw Fail(path, $"header length {n} is absurd (over the {MaxHeaderSize}-byte limit); not a safetensors file or corrupt");
        if (8 + (long)n > fileLength)
            throw Fail(path, $"header length {n} is larger than the file allows ({fileLength - 8} bytes after the prefix); the file is truncated");
        return (int)n;
    }

    internal sealed record Parsed(List<SafetensorsEntry> Entries, OrderedDictionary<string, string> Metadata);

    public static Parsed Parse(string path, byte[] header, long dataLength)
    {
        if (!Utf8.IsValid(header))
            throw Fail(path, "header is not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header);
        }
        catch (JsonException ex)
        {
            throw new SafetensorsFormatException(path, $"header is not valid JSON ({ex.Message})", ex);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw Fail(path, $"header is not a JSON object (found {root.ValueKind})");

            var entries = new List<SafetensorsEntry>();
            var metadata = new OrderedDictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in root.EnumerateObject())
            {
                // JSON permits duplicate keys; a duplicated tensor name would be ambiguous, so refuse it.
                if (!seen.Add(prop.Name))
                    throw Fail(path, $"duplicate key '{prop.Name}' in header");
                if (prop.Name == MetadataKey)
                    ReadMetadata(path, prop.Value, metadata);
                else
                    entries.Add(ReadEntry(path, prop.Name, prop.Value));
            }
            ValidateLayout(path, entries, dataLength);
            return new Parsed(entries, metadata);
        }
    }

    private static void ReadMetadata(string path, JsonElement value, OrderedDictionary<string, string> into)
    {
        if (value.ValueKind == JsonValueKind.Null)
            return; // Rust reads `null` as "no metadata".
        if (value.ValueKind != JsonValueKind.Object)
            throw Fail(path, $"{MetadataKey} must be an object of strings (found {value.ValueKind})");
        foreach (var p in value.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String)
                throw Fail(path, $"{MetadataKey} value for '{p.Name}' must be a string (found {p.Value.ValueKind})");
            if (!into.TryAdd(p.Name, p.Value.GetString()!))
                throw Fail(path, $"duplicate key '{p.Name}' in {MetadataKey}");
        }
    }

    private static SafetensorsEntry ReadEntry(string path, string name, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Fail(path, $"tensor '{name}' must be an object with dtype, shape and data_offsets (found {value.ValueKind})");

        if (!value.TryGetProperty("dtype", out var dtypeEl) || dtypeEl.ValueKind != JsonValueKind.String)
            throw Fail(path, $"tensor '{name}' has no string 'dtype'");
        var dtype = dtypeEl.GetString()!;
        var info = SafetensorsDTypes.TryParse(dtype)
            ?? throw Fail(path, $"tensor '{name}' has unknown dtype '{dtype}'");

        if (!value.TryGetProperty("shape", out var shapeEl))
            throw Fail(path, $"tensor '{name}' has no 'shape'");
        var shape = ReadNonNegativeInts(path, name, "shape", shapeEl);

        if (!value.TryGetProperty("data_offsets", out var offEl))
            throw Fail(path, $"tensor '{name}' has no 'data_offsets'");
        var offsets = ReadNonNegativeInts(path, name, "data_offsets", offEl);
        if (offsets.Length != 2)
            throw Fail(path, $"tensor '{name}' data_offsets must be [begin, end] (found {offsets.Length} numbers)");
        var (begin, end) = (offsets[0], offsets[1]);
        if (end < begin)
            throw Fail(path, $"tensor '{name}' data_offsets [{begin}, {end}] end before they begin");

        long expected;
        try
        {
            expected = info.Size;
            foreach (var d in shape) expected = checked(expected * d);
        }
        catch (OverflowException)
        {
            throw Fail(path, $"tensor '{name}' shape {FormatShape(shape)} overflows a 64-bit byte count");
        }
        if (end - begin != expected)
            throw Fail(path, $"tensor '{name}' shape {FormatShape(shape)} with dtype {dtype} needs {expected} bytes " +
                             $"but data_offsets [{begin}, {end}] hold {end - begin} (shape/offsets inconsistent)");
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    private static long[] ReadNonNegativeInts(string path, string name, string field, JsonElement el)
    {
        if (el.ValueKind != JsonValueKind.Array)
            throw Fail(path, $"tensor '{name}' {field} must be an array (found {el.ValueKind})");
        var result = new long[el.GetArrayLength()];
        var i = 0;
        foreach (var item in el.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out var v) || v < 0)
                throw Fail(path, $"tensor '{name}' {field} must hold non-negative integers (found {item.GetRawText()})");
            result[i++] = v;
        }
        return result;
    }

    private static void ValidateLayout(string path, List<SafetensorsEntry> entries, long dataLength)
    {
        // Ties on begin are zero-length tensors; ordering by end too lets them sit before a tensor at the same offset.
        var sorted = entries.OrderBy(e => e.DataBegin).ThenBy(e => e.DataEnd).ToList();
        long cursor = 0;
        SafetensorsEntry? previous = null;
        foreach (var e in sorted)
        {
            if (e.DataBegin < cursor)
                throw Fail(path, $"tensor '{e.Name}' data_offsets [{e.DataBegin}, {e.DataEnd}] overlap tensor " +
                                 $"'{previous!.Name}' [{previous.DataBegin}, {previous.DataEnd}] (overlapping tensor ranges)");
            if (e.DataBegin > cursor)
                throw Fail(path, $"tensor '{e.Name}' begins at {e.DataBegin} but the data before it ends at {cursor}: " +
                                 "data offsets are not contiguous (hole in the data section)");
            if (e.DataEnd > dataLength)
                throw Fail(path, $"tensor '{e.Name}' data_offsets [{e.DataBegin}, {e.DataEnd}] extend beyond the data " +
                                 $"section ({dataLength} bytes); the file is truncated");
            cursor = e.DataEnd;
            previous = e;
        }
        if (cursor != dataLength)
            throw Fail(path, $"the data section is {dataLength} bytes but the tensors cover only {cursor}: " +
                             "offsets do not cover the data section (trailing bytes)");
    }

    /// <summary>
    /// The padded header bytes (without the u64 length prefix), byte-for-byte what the Rust crate's serde_json
    /// writes: compact, <c>__metadata__</c> first, tensors in the given order, then spaces up to 8 + N ≡ 0 (mod 8).
    /// </summary>
    public static byte[] Serialize(IEnumerable<SafetensorsEntry> entries, IEnumerable<KeyValuePair<string, string>>? metadata)
    {
        var sb = new StringBuilder();
        sb.Append('{');
        var first = true;
        if (metadata is not null)
        {
            sb.Append("\"__metadata__\":{");
            var firstMeta = true;
            foreach (var (k, v) in metadata)
            {
                if (!firstMeta) sb.Append(',');
                firstMeta = false;
                AppendString(sb, k).Append(':');
                AppendString(sb, v);
            }
            sb.Append('}');
            first = false;
        }
        foreach (var e in entries)
        {
            if (!first) sb.Append(',');
            first = false;
            AppendString(sb, e.Name).Append(":{\"dtype\":");
            AppendString(sb, e.DType).Append(",\"shape\":[");
            sb.AppendJoin(',', e.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
            sb.Append("],\"data_offsets\":[")
              .Append(e.DataBegin.ToString(CultureInfo.InvariantCulture)).Append(',')
              .Append(e.DataEnd.ToString(CultureInfo.InvariantCulture)).Append("]}");
        }
        sb.Append('}');
        var strict = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        byte[] json;
        try
        {
            json = strict.GetBytes(sb.ToString());
        }
        catch (EncoderFallbackException ex)
        {
            throw new ArgumentException("A tensor name or metadata string contains an unpaired UTF-16 surrogate.", ex);
        }
        var pad = (8 - json.Length % 8) % 8; // + the 8-byte prefix keeps the data section 8-aligned
        var padded = new byte[json.Length + pad];
        json.CopyTo(padded, 0);
        padded.AsSpan(json.Length).Fill((byte)' ');
        return padded;
    }

    /// <summary>serde_json's escaping: only quote, backslash and control characters; non-ASCII stays raw UTF-8.</summary>
    private static StringBuilder AppendString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case < ' ': sb.Append("\\u00").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture)); break;
                default: sb.Append(c); break;
            }
        }
        return sb.Append('"');
    }

    internal static string FormatShape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    private static SafetensorsFormatException Fail(string path, string reason) => new(path, reason);
}
