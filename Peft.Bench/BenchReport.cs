using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Bench;

/// <summary>One suite's results: a Markdown table for people and JSON rows for tools.</summary>
public sealed class BenchTable(string suite, string title, params string[] columns)
{
    public string Suite { get; } = suite;
    public string Title { get; } = title;
    public IReadOnlyList<string> Columns { get; } = columns;
    public List<JsonObject> Rows { get; } = new();
    public List<string> Notes { get; } = new();

    public void Add(JsonObject row) => Rows.Add(row);

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"### {Title}").AppendLine();
        sb.AppendLine("| " + string.Join(" | ", Columns) + " |");
        sb.AppendLine("|" + string.Concat(Columns.Select(_ => "---|")));
        foreach (var r in Rows)
            sb.AppendLine("| " + string.Join(" | ", Columns.Select(c => Format(r[c]))) + " |");
        foreach (var n in Notes) sb.AppendLine().Append("- ").AppendLine(n);
        return sb.ToString();
    }

    private static string Format(JsonNode? v) => v switch
    {
        null => "–",
        JsonValue jv when jv.TryGetValue<long>(out var l) => l.ToString("N0", CultureInfo.InvariantCulture),
        JsonValue jv when jv.TryGetValue<int>(out var i) => i.ToString("N0", CultureInfo.InvariantCulture),
        JsonValue jv when jv.TryGetValue<double>(out var d) => FormatDouble(d),
        _ => v.ToString(),
    };

    private static string FormatDouble(double d) => Math.Abs(d) switch
    {
        >= 1000 => d.ToString("N0", CultureInfo.InvariantCulture),
        >= 100 => d.ToString("F0", CultureInfo.InvariantCulture),
        >= 10 => d.ToString("F1", CultureInfo.InvariantCulture),
        >= 1 => d.ToString("F2", CultureInfo.InvariantCulture),
        _ => d.ToString("G3", CultureInfo.InvariantCulture),
    };
}

/// <summary>A whole benchmark run: machine description plus suite tables.</summary>
public sealed class BenchReport
{
    public required MachineInfo Machine { get; init; }
    public required bool Quick { get; init; }
    public DateTime StartedUtc { get; init; } = DateTime.UtcNow;
    public List<BenchTable> Tables { get; } = new();

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"Measured {StartedUtc:yyyy-MM-dd HH:mm} UTC{(Quick ? " (--quick: small shapes, few steps — not comparable)" : "")} with `peft bench`.").AppendLine();
        sb.AppendLine(Machine.ToMarkdown()).AppendLine();
        foreach (var t in Tables) sb.AppendLine(t.ToMarkdown());
        return sb.ToString();
    }

    public JsonObject ToJson() => new()
    {
        ["started_utc"] = StartedUtc.ToString("O", CultureInfo.InvariantCulture),
        ["quick"] = Quick,
        ["machine"] = JsonSerializer.SerializeToNode(Machine),
        ["suites"] = new JsonObject(Tables.Select(t => KeyValuePair.Create(t.Suite,
            (JsonNode?)new JsonObject { ["title"] = t.Title, ["rows"] = new JsonArray(t.Rows.Select(r => (JsonNode?)r.DeepClone()).ToArray()), ["notes"] = new JsonArray(t.Notes.Select(n => (JsonNode?)n).ToArray()) }))),
    };
}

internal static class Stats
{
    public static double Median(IReadOnlyList<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length == 0 ? double.NaN : s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
