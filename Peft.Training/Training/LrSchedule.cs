namespace Peft.Training.Training;

public enum SchedulerKind { Linear, Cosine, Constant }

/// <summary>
/// transformers' <c>get_scheduler</c> factors (LambdaLR): step k (0-based: the k-th optimizer step uses factor(k))
/// ramps linearly from 0 over the warmup steps, then decays to 0 at <c>TotalSteps</c> (linear), follows half a
/// cosine (cosine), or stays at 1 (constant with warmup).
/// </summary>
public sealed record LrSchedule(SchedulerKind Kind, int WarmupSteps, int TotalSteps)
{
    public double Factor(int step)
    {
        if (step < WarmupSteps) return (double)step / Math.Max(1, WarmupSteps);
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return Kind switch
        {
            SchedulerKind.Linear => Math.Max(0.0, (double)(TotalSteps - step) / Math.Max(1, TotalSteps - WarmupSteps)),
            SchedulerKind.Cosine => Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * progress))),
            _ => 1.0,
        };
    }

    public static SchedulerKind ParseKind(string s) => s.ToLowerInvariant() switch
    {
        "linear" => SchedulerKind.Linear,
        "cosine" => SchedulerKind.Cosine,
        "constant" or "constant_with_warmup" => SchedulerKind.Constant,
        _ => throw new ArgumentException($"unknown scheduler '{s}' (linear, cosine, constant)"),
    };
}
