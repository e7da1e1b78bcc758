using System.Globalization;
using System.Text.Json.Nodes;

namespace Peft.Bench;

/// <summary>The mission's headline claims, checked against the rows a run produced (only those the run has data for).</summary>
public static class Claims
{
    public static BenchTable? Check(BenchReport report)
    {
        var table = new BenchTable("claims", "Claims checked against this run", "claim", "measured", "holds");
        var train = report.Tables.FirstOrDefault(t => t.Suite == "train")?.Rows ?? [];
        var adapter = report.Tables.FirstOrDefault(t => t.Suite == "adapter");
        foreach (var cfg in train.Select(r => Str(r, "config")).Distinct())
        {
            var lora = train.FirstOrDefault(r => Str(r, "config") == cfg && Str(r, "method") == "lora_r8" && Str(r, "gc") == "no");
            var full = train.FirstOrDefault(r => Str(r, "config") == cfg && Str(r, "method") == "full" && Str(r, "gc") == "no");
            if (lora is not null)
            {
                double pct = Num(lora, "trainable %");
                table.Add(Row($"{cfg}: LoRA r=8 on q,v trains 0.1–1 % of the parameters", $"{pct:F3} %", pct is >= 0.1 and <= 1.0));
            }
            if (lora is not null && full is not null)
            {
                double ratio = Num(full, "peak RSS MB") / Num(lora, "peak RSS MB");
                table.Add(Row($"{cfg}: LoRA training peak RSS well below full fine-tuning's", $"full/LoRA = {ratio:F2}× ({Num(full, "peak RSS MB"):F0} vs {Num(lora, "peak RSS MB"):F0} MB)", ratio >= 1.3));
            }
        }
        if (adapter?.Rows.FirstOrDefault(r => Str(r, "method") == "lora_r8") is { } a)
        {
            double pct = Num(a, "adapter/base %");
            table.Add(Row($"{adapter.Title}: LoRA r=8 adapter file ≤ 1 % of the base", $"{pct:F3} %", pct <= 1.0));
        }
        return table.Rows.Count == 0 ? null : table;
    }

    private static JsonObject Row(string claim, string measured, bool holds) =>
        new() { ["claim"] = claim, ["measured"] = measured, ["holds"] = holds ? "yes" : "NO" };

    private static string Str(JsonObject r, string k) => r[k]?.ToString() ?? "";

    private static double Num(JsonObject r, string k) => double.Parse(r[k]!.ToString(), CultureInfo.InvariantCulture);
}
