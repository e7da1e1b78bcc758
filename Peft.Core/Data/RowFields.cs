using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Core.Data;

/// <summary>One chat turn (role system, user or assistant).</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>A problem with one row; the builder prefixes the row's location.</summary>
internal sealed class RowException(string message) : Exception(message);

/// <summary>
/// Typed field reads from a <see cref="DataRecord"/>. CSV cells are strings, so lists may also be written as a JSON
/// array string (<c>"[1, 2]"</c>) or space-separated integers, and integers as decimal strings.
/// </summary>
internal static class RowFields
{
    public static bool Has(DataRecord r, string name) => r.Fields.TryGetPropertyValue(name, out var v) && v is not null;

    public static string? FirstPresent(DataRecord r, params string[] names) => names.FirstOrDefault(n => Has(r, n));

    public static string String(DataRecord r, string name)
    {
        if (!r.Fields.TryGetPropertyValue(name, out var v) || v is null) throw new RowException($"field '{name}' is missing");
        return AsString(v, name);
    }

    public static string? OptionalString(DataRecord r, string name) =>
        r.Fields.TryGetPropertyValue(name, out var v) && v is not null ? AsString(v, name) : null;

    private static string AsString(JsonNode v, string name) => v.GetValueKind() switch
    {
        JsonValueKind.String => v.GetValue<string>(),
        JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => v.ToJsonString(),
        _ => throw new RowException($"field '{name}' must be a string, got {v.GetValueKind().ToString().ToLowerInvariant()}"),
    };

    /// <summary>The node of a list field, parsing CSV strings that hold JSON arrays.</summary>
    public static JsonArray? Array(DataRecord r, string name)
    {
        if (!r.Fields.TryGetPropertyValue(name, out var v) || v is null) return null;
        if (v is JsonArray a) return a;
        if (v.GetValueKind() == JsonValueKind.String)
        {
            string s = v.GetValue<string>().Trim();
            if (s.StartsWith('['))
            {
                try { if (JsonNode.Parse(s) is JsonArray parsed) return parsed; }
                catch (JsonException) { }
                throw new RowException($"field '{name}' is not a valid JSON array");
            }
            var parts = s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return new JsonArray(parts.Select(p => (JsonNode?)JsonValue.Create(p)).ToArray());
        }
        throw new RowException($"field '{name}' must be a list, got {v.GetValueKind().ToString().ToLowerInvariant()}");
    }

    public static long[] IntList(DataRecord r, string name)
    {
        var a = Array(r, name) ?? throw new RowException($"field '{name}' is missing");
        var result = new long[a.Count];
        for (int i = 0; i < a.Count; i++)
            result[i] = Int(a[i]) ?? throw new RowException($"field '{name}'[{i}] must be an integer, got {a[i]?.ToJsonString() ?? "null"}");
        return result;
    }

    /// <summary>An integer from a JSON number or a decimal string; null when neither.</summary>
    public static long? Int(JsonNode? v)
    {
        if (v is not JsonValue jv) return null;
        if (jv.TryGetValue<long>(out var l)) return l;
        if (jv.TryGetValue<double>(out var d) && d == Math.Floor(d)) return (long)d;
        if (jv.TryGetValue<string>(out var s) && long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var p)) return p;
        return null;
    }

    /// <summary>A label: an integer, or a string (to be mapped to an id by the caller).</summary>
    public static (long? Id, string? Name) Label(JsonNode? v, string name)
    {
        if (Int(v) is long id) return (id, null);
        if (v is JsonValue jv && jv.TryGetValue<string>(out var s) && s.Length > 0) return (null, s);
        throw new RowException($"field '{name}' must be an integer or a non-empty string, got {v?.ToJsonString() ?? "null"}");
    }

    public static List<ChatMessage> Messages(DataRecord r)
    {
        var a = Array(r, "messages") ?? throw new RowException("field 'messages' is missing");
        if (a.Count == 0) throw new RowException("field 'messages' is empty");
        var list = new List<ChatMessage>();
        for (int i = 0; i < a.Count; i++)
        {
            if (a[i] is not JsonObject o) throw new RowException($"messages[{i}] must be an object with 'role' and 'content'");
            string? role = o["role"] is JsonValue rv && rv.TryGetValue<string>(out var rs) ? rs : null;
            string? content = o["content"] is JsonValue cv && cv.TryGetValue<string>(out var cs) ? cs : null;
            if (role is null) throw new RowException($"messages[{i}].role is missing or not a string");
            if (content is null) throw new RowException($"messages[{i}].content is missing or not a string");
            if (role is not ("system" or "user" or "assistant"))
                throw new RowException($"messages[{i}].role '{role}' is not system, user or assistant");
            list.Add(new ChatMessage(role, content));
        }
        return list;
    }
}
