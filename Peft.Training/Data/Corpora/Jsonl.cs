using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Peft.Training.IO;

namespace Peft.Training.Data.Corpora;

/// <summary>JSON Lines files: one compact object per line, UTF-8 without BOM, "\n" line ends.</summary>
public static class Jsonl
{
    // Snake-case names, non-ASCII kept literal (readable and ~30% smaller for typographic quotes and dashes).
    internal static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Writes <paramref name="records"/> atomically (a reader never sees half a file); returns the count.</summary>
    public static int Write<T>(string path, IEnumerable<T> records)
    {
        int count = 0;
        AtomicFile.Write(path, tmp =>
        {
            using var stream = File.Create(tmp);
            using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { NewLine = "\n" };
            foreach (var r in records)
            {
                writer.WriteLine(JsonSerializer.Serialize(r, Options));
                count++;
            }
        });
        return count;
    }

    /// <summary>Parses every non-blank line; a malformed line is an error naming the file and line number.</summary>
    public static IEnumerable<JsonElement> Read(string path)
    {
        if (!File.Exists(path)) throw new PeftUserException($"Data file '{path}' does not exist.", UserErrorKind.NotFound);
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonElement e;
            try
            {
                using var doc = JsonDocument.Parse(line);
                e = doc.RootElement.Clone();
            }
            catch (JsonException ex)
            {
                throw new PeftUserException($"{path}:{lineNo}: invalid JSON: {ex.Message}", UserErrorKind.Invalid, ex);
            }
            if (e.ValueKind != JsonValueKind.Object) throw new PeftUserException($"{path}:{lineNo}: expected a JSON object.", UserErrorKind.Invalid);
            yield return e;
        }
    }

    /// <summary>
    /// The "text" of every record in <paramref name="split"/> (null: all records). Records without a "split" field
    /// count as belonging to every split (so plain {"text": ...} files can be trained on) unless
    /// <paramref name="includeUnsplit"/> is false (evaluation must not silently run on training text).
    /// </summary>
    public static IEnumerable<string> ReadTexts(string path, string? split, bool includeUnsplit = true)
    {
        int index = 0;
        foreach (var e in Read(path))
        {
            index++;
            if (split is not null)
            {
                bool has = e.TryGetProperty("split", out var s) && s.ValueKind == JsonValueKind.String;
                if (has ? s.GetString() != split : !includeUnsplit) continue;
            }
            if (!e.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                throw new PeftUserException($"{path}: record {index} has no string \"text\" field.", UserErrorKind.Invalid);
            yield return t.GetString()!;
        }
    }
}
