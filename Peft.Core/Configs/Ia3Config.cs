using System.Text.Json.Nodes;

using Peft.Core.IO;
using Peft.Core.Models;

namespace Peft.Core.Configs;

/// <summary>
/// <c>IA3Config</c>: which layers get a learned scaling vector, and which of them are "feed-forward" (scaled on the
/// input instead of the output). Null target/feed-forward lists are filled from per-architecture defaults.
/// </summary>
public sealed class Ia3Config : PeftConfig
{
    public override string PeftType => "IA3";

    public StringOrList? TargetModules { get; set; }
    public StringOrList? ExcludeModules { get; set; }
    /// <summary>Regex string (full match) or list of suffixes; see <see cref="IsFeedforward"/> for PEFT's list quirk.</summary>
    public StringOrList? FeedforwardModules { get; set; }
    public bool FanInFanOut { get; set; }
    /// <summary>True: vectors start at 1 (no-op). False: N(0, 1) like PEFT's uninitialised <c>torch.randn</c>.</summary>
    public bool InitIa3Weights { get; set; } = true;

    public override void Validate()
    {
        if (FeedforwardModules?.Items is { } ff && TargetModules?.Items is { } targets)
        {
            var missing = ff.Where(f => !targets.Contains(f)).ToList();
            if (missing.Count > 0)
                throw new PeftConfigException(
                    $"IA3Config: 'feedforward_modules' must be a subset of 'target_modules'; [{string.Join(", ", missing)}] not in [{string.Join(", ", targets)}]");
        }
    }

    /// <summary>
    /// PEFT's feed-forward test: a string is a full-match regex; list items match by plain <c>key.endswith(item)</c>
    /// with no dot boundary (so "output.dense" also matches "attention.output.dense") — kept for parity.
    /// </summary>
    public bool IsFeedforward(string key) => FeedforwardModules switch
    {
        null => false,
        { Pattern: { } p } => TargetMatching.IsFullMatch(p, key),
        { Items: { } items } => items.Any(i => key.EndsWith(i, StringComparison.Ordinal)),
        _ => false,
    };

    protected override void WriteFields(JsonObject o)
    {
        o["target_modules"] = TargetModules?.ToNode();
        o["exclude_modules"] = ExcludeModules?.ToNode();
        o["feedforward_modules"] = FeedforwardModules?.ToNode();
        o["fan_in_fan_out"] = FanInFanOut;
        o["init_ia3_weights"] = InitIa3Weights;
    }

    protected override void ReadFields(JsonFieldReader r)
    {
        TargetModules = r.StringOrList("target_modules");
        ExcludeModules = r.StringOrList("exclude_modules");
        FeedforwardModules = r.StringOrList("feedforward_modules");
        FanInFanOut = r.Bool("fan_in_fan_out") ?? false;
        InitIa3Weights = r.Bool("init_ia3_weights") ?? true;
    }
}
