using System.Text.Json;
using System.Text.Json.Serialization;

namespace Peft.Training.Training;

/// <summary>
/// <c>trainer_state.json</c>: where training stands (step, data position, early-stopping counters), the loss
/// history, the settings that fix the data order (checked on resume), and a manifest of the checkpoint's files with
/// their sizes. It is written last, so a checkpoint whose manifest matches its files is complete.
/// </summary>
public sealed class TrainerState
{
    public int GlobalStep { get; set; }
    /// <summary>0-based epoch of the next micro-batch.</summary>
    public int Epoch { get; set; }
    /// <summary>Index (in this epoch's order) of the next micro-batch to train on.</summary>
    public int BatchInEpoch { get; set; }
    public int TotalSteps { get; set; }
    public int NumExamples { get; set; }
    public int BatchSize { get; set; }
    public int GradientAccumulationSteps { get; set; }
    public int Seed { get; set; }
    public bool Shuffle { get; set; }
    public string Optimizer { get; set; } = "";
    public double? BestEvalLoss { get; set; }
    public int EvalsWithoutImprovement { get; set; }
    public List<Dictionary<string, double>> LogHistory { get; set; } = new();
    public Dictionary<string, long> Files { get; set; } = new();

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static TrainerState Parse(string text, string source)
    {
        try
        {
            return JsonSerializer.Deserialize<TrainerState>(text, Json) ?? throw new PeftUserException($"{source}: empty trainer state", UserErrorKind.Invalid);
        }
        catch (JsonException e)
        {
            throw new PeftUserException($"{source}: invalid trainer state ({e.Message})", UserErrorKind.Invalid);
        }
    }

    public TrainerState Clone() => Parse(ToJson(), "(clone)");
}
