using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>--method</c> → adapter config. Adding a method is one line here (e.g. <c>["ia3"] = s => new IA3Config { ... }</c>);
/// a factory returning null means full fine-tuning (every weight of the model is trained).
/// </summary>
internal static class TrainMethods
{
    private static readonly Dictionary<string, Func<TrainSettings, PeftConfig?>> Table = new(StringComparer.OrdinalIgnoreCase)
    {
        ["lora"] = s => Lora(s, dora: false),
        ["dora"] = s => Lora(s, dora: true),
        ["full"] = _ => null,
    };

    public static IEnumerable<string> Names => Table.Keys;

    public static bool Exists(string name) => Table.ContainsKey(name);

    public static PeftConfig? Create(string name, TrainSettings s) => Table[name](s);

    private static LoraConfig Lora(TrainSettings s, bool dora)
    {
        var cfg = new LoraConfig
        {
            R = s.Int("r") ?? 8,
            LoraAlpha = s.Number("lora-alpha") ?? 16,
            LoraDropout = s.Number("lora-dropout") ?? 0.05,
            UseDora = dora,
            UseRslora = s.Flag("use-rslora"),
        };
        if (s.List("target-modules") is { Count: > 0 } targets)
            cfg.TargetModules = targets is ["all-linear"] ? new StringOrList("all-linear", null) : StringOrList.Of([.. targets]);
        s.Check("r", cfg.R > 0, $"must be a positive integer, got {cfg.R}");
        s.Check("lora-dropout", cfg.LoraDropout is >= 0 and < 1, $"must be in [0, 1), got {cfg.LoraDropout}");
        s.Check("lora-alpha", cfg.LoraAlpha > 0, $"must be positive, got {cfg.LoraAlpha}");
        return cfg;
    }
}
