using Peft.Core;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Core.Data;

/// <summary>One row of a data file, with the file and (1-based) line it starts on, for error messages.</summary>
public sealed record DataRecord(string File, int Line, JsonObject Fields)
{
    public string Location => $"{File}:{Line}";
}

/// <summary>A row or file that cannot be used; the message starts with <c>file:line:</c>.</summary>
public sealed class DataFormatException(string message, UserErrorKind kind = UserErrorKind.Invalid) : PeftUserException(message, kind);

/// <summary>
/// Reads rows from JSON Lines (<c>.jsonl</c>), a JSON array (<c>.json</c>), CSV/TSV with a header row, or plain text
/// (any other extension: one <c>{"text": paragraph}</c> row per blank-line-separated paragraph).
/// </summary>
public static class DataFileReader
{
    /// <summary>
    /// All rows of <paramref name="path"/>. A malformed row throws <see cref="DataFormatException"/>, or with
    /// <paramref name="onBadRow"/> set is reported there and skipped.
    /// </summary>
    public static List<DataRecord> Read(string path, Action<DataFormatException>? onBadRow = null)
    {
        if (!File.Exists(path)) throw new PeftUserException($"{path}: data file not found", UserErrorKind.NotFound);
        string ext = Path.GetExtension(path).ToLowerInvariant();
        var rows = new List<DataRecord>();
        void Bad(DataFormatException e)
        {
            if (onBadRow is null) throw e;
            onBadRow(e);
        }
        switch (ext)
        {
            case ".jsonl" or ".ndjson":
                ReadJsonLines(path, rows, Bad);
                break;
            case ".json":
                ReadJsonArray(path, rows, Bad);
                break;
            case ".csv":
                ReadDelimited(path, ',', rows, Bad);
                break;
            case ".tsv":
                ReadDelimited(path, '\t', rows, Bad);
                break;
            default:
                ReadParagraphs(path, rows);
                break;
        }
        return rows;
    }

    private static void ReadJsonLines(string path, List<DataRecord> rows, Action<DataFormatException> bad)
    {
        int line = 0;
        foreach (var text in File.ReadLines(path))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            JsonNode? node;
            try { node = JsonNode.Parse(text); }
            catch (JsonException e)
            {
                bad(new DataFormatException($"{path}:{line}: invalid JSON ({e.Message})"));
                continue;
            }
            if (node is JsonObject obj) rows.Add(new DataRecord(path, line, obj));
            else bad(new DataFormatException($"{path}:{line}: expected a JSON object, got {node?.GetValueKind().ToString() ?? "null"}"));
        }
    }

    private static void ReadJsonArray(string path, List<DataRecord> rows, Action<DataFormatException> bad)
    {
        string text = File.ReadAllText(path);
        // A .json file holding one object per line is JSON Lines under another name (common for HF exports).
        if (!text.TrimStart().StartsWith('['))
        {
            ReadJsonLines(path, rows, bad);
            return;
        }
        JsonNode? node;
        try { node = JsonNode.Parse(text); }
        catch (JsonException e)
        {
            throw new DataFormatException($"{path}:{(e.LineNumber ?? 0) + 1}: invalid JSON ({e.Message})");
        }
        var array = (JsonArray)node!;
        // Line numbers are not kept by JsonNode; report the element index as the "line" of a JSON array.
        for (int i = 0; i < array.Count; i++)
        {
            if (array[i] is JsonObject obj) rows.Add(new DataRecord(path, i + 1, (JsonObject)obj.DeepClone()));
            else bad(new DataFormatException($"{path}:{i + 1}: element {i} is not a JSON object"));
        }
    }

    private static void ReadDelimited(string path, char sep, List<DataRecord> rows, Action<DataFormatException> bad)
    {
        using var reader = new StreamReader(path, Encoding.UTF8);
        var parser = new CsvParser(reader, sep);
        if (parser.Next() is not { } header)
            throw new DataFormatException($"{path}:1: empty file (a header row is required)");
        var names = header.Fields.Select(h => h.Trim()).ToArray();
        while (true)
        {
            CsvParser.Row? row;
            try { row = parser.Next(); }
            catch (DataFormatException e)
            {
                bad(new DataFormatException($"{path}:{e.Message}"));
                break; // an unterminated quote consumes the rest of the file
            }
            if (row is null) break;
            if (row.Fields.Count == 1 && row.Fields[0].Length == 0) continue; // blank line
            if (row.Fields.Count != names.Length)
            {
                bad(new DataFormatException($"{path}:{row.Line}: expected {names.Length} columns ({string.Join(", ", names)}), got {row.Fields.Count}"));
                continue;
            }
            var obj = new JsonObject();
            for (int i = 0; i < names.Length; i++) obj[names[i]] = row.Fields[i];
            rows.Add(new DataRecord(path, row.Line, obj));
        }
    }

    private static void ReadParagraphs(string path, List<DataRecord> rows)
    {
        int line = 0, start = 0;
        var sb = new StringBuilder();
        void Flush()
        {
            if (sb.Length > 0) rows.Add(new DataRecord(path, start, new JsonObject { ["text"] = sb.ToString() }));
            sb.Clear();
        }
        foreach (var text in File.ReadLines(path))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text)) { Flush(); continue; }
            if (sb.Length == 0) start = line;
            else sb.Append('\n');
            sb.Append(text);
        }
        Flush();
    }
}
