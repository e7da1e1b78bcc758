using Peft.Cli.Support;
using Peft.Training.Tuners;
using Peft.Training.Tuners.AdaLora;
using Peft.Training.Tuners.Ia3;
using Peft.Training.Tuners.Lora;
using Peft.Training.Tuners.PrefixTuning;
using Peft.Training.Tuners.PromptTuning;
using Peft.Training.Tuners.PTuning;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>--method</c> → adapter config. Adding a method is one line here (e.g. <c>["ia3"] = s => new IA3Config { ... }</c>);
/// a factory returning null means the model's own weights are trained: all of them (<c>full</c>) or the task head
/// alone (<c>head</c>, see <see cref="TrainsHeadOnly"/>).
/// </summary>
internal static class TrainMethods
{
    private static readonly Dictionary<string, Func<TrainSettings, PeftConfig?>> Table = new(StringComparer.OrdinalIgnoreCase)
    {
        ["lora"] = s => Lora(s, dora: false),
        ["dora"] = s => Lora(s, dora: true),
        ["adalora"] = AdaLora,
        ["ia3"] = s => new Ia3Config { TargetModules = Targets(s), FeedforwardModules = Targets(s) is null ? null : StringOrList.Of() },
        ["prefix"] = s => new PrefixTuningConfig
        {
            NumVirtualTokens = VirtualTokens(s), PrefixProjection = s.Flag("prefix-projection"), EncoderHiddenSize = s.Int("encoder-hidden-size"),
        },
        ["prompt"] = s => new PromptTuningConfig { NumVirtualTokens = VirtualTokens(s) },
        ["ptuning"] = s => new PromptEncoderConfig { NumVirtualTokens = VirtualTokens(s), EncoderHiddenSize = s.Int("encoder-hidden-size") },
        ["full"] = _ => null,
        ["head"] = _ => null,
    };

    public static IEnumerable<string> Names => Table.Keys;

    public static bool Exists(string name) => Table.ContainsKey(name);

    public static bool TrainsHeadOnly(string name) => name.Equals("head", StringComparison.OrdinalIgnoreCase);

    public static PeftConfig? Create(string name, TrainSettings s)
    {
        var config = Table[name](s);
        if (s.List("modules-to-save") is { Count: > 0 } modules)
        {
            s.Check("modules-to-save", config is not null, $"only applies to adapter methods, not '{name}'");
            config!.ModulesToSave = modules;
        }
        return config;
    }

    private static StringOrList? Targets(TrainSettings s) => s.List("target-modules") is { Count: > 0 } targets
        ? targets is ["all-linear"] ? new StringOrList("all-linear", null) : StringOrList.Of([.. targets])
        : null;

    private static int VirtualTokens(TrainSettings s)
    {
        int n = s.Int("num-virtual-tokens") ?? 20;
        s.Check("num-virtual-tokens", n > 0, $"must be a positive integer, got {n}");
        return n;
    }

    private static AdaLoraConfig AdaLora(TrainSettings s)
    {
        var cfg = new AdaLoraConfig
        {
            InitR = s.Int("init-r") ?? 12,
            TargetR = s.Int("target-r") ?? 8,
            LoraAlpha = s.Number("lora-alpha") ?? 16,
            LoraDropout = s.Number("lora-dropout") ?? 0.05,
            TotalStep = s.Int("total-step"),
            TargetModules = Targets(s),
        };
        s.Check("init-r", cfg.InitR > 0, $"must be a positive integer, got {cfg.InitR}");
        s.Check("target-r", cfg.TargetR > 0 && cfg.TargetR <= cfg.InitR, $"must be in 1..init-r ({cfg.InitR}), got {cfg.TargetR}");
        return cfg;
    }

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
