using System.Text.Json.Nodes;

namespace Peft.Bench;

/// <summary>Options of <c>peft bench</c>.</summary>
public sealed record BenchOptions
{
    /// <summary>Configs to run (names from <see cref="BenchConfigs"/> or config.json paths); null = the suite's defaults.</summary>
    public IReadOnlyList<string>? Configs { get; init; }
    public IReadOnlyList<string>? Methods { get; init; }
    public int? Batch { get; init; }
    public int? Seq { get; init; }
    public int? Threads { get; init; }
    public bool Quick { get; init; }
    public int WarmupSteps => Quick ? 1 : 2;
    public int TimedSteps => Quick ? 2 : 5;
}

/// <summary>Runs one measurement in a fresh process (so peak memory is that row's alone) and returns its JSON result.</summary>
public delegate JsonObject ChildRunner(JsonObject spec);
