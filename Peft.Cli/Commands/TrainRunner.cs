using Peft.Cli.Support;
using System.Globalization;
using Peft.Training.FineTuning;
using Peft.Training.Training;
using Spectre.Console;

namespace Peft.Cli.Commands;

/// <summary>Runs a <c>peft train</c> plan and shows its progress (JSON lines or a progress bar).</summary>
internal static class TrainRunner
{
    public static int Run(FineTunePlan plan, bool jsonEvents, TextWriter stdout, TextWriter stderr, CancellationToken cancellation)
    {
        try
        {
            var result = jsonEvents ? RunWithJson(plan, stdout, cancellation) : RunWithProgressBar(plan, stdout, cancellation);
            return result.Reason == TrainingStopReason.Cancelled ? 130 : CliApp.Success;
        }
        catch (PeftUserException e)
        {
            stderr.WriteLine($"error: {e.Message.ReplaceLineEndings(" ")}");
            return CliApp.BadInput;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"error: unexpected {e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}");
            return CliApp.UnexpectedError;
        }
    }

    private static TrainingResult RunWithJson(FineTunePlan plan, TextWriter stdout, CancellationToken cancellation)
    {
        var progress = new SyncProgress<TrainingEvent>(e =>
        {
            stdout.WriteLine(e.ToJson());
            stdout.Flush();
        });
        return plan.Run(progress, cancellation).Training;
    }

    private static TrainingResult RunWithProgressBar(FineTunePlan plan, TextWriter stdout, CancellationToken cancellation)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stdout) });
        TrainingResult? result = null;
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                ProgressTask? task = null;
                var progress = new SyncProgress<TrainingEvent>(e =>
                {
                    if (e.Kind == TrainingEventKind.Warning)
                    {
                        console.MarkupLine($"[yellow]warning: {Markup.Escape(e.Message ?? "")}[/]");
                        return;
                    }
                    task ??= ctx.AddTask("training", maxValue: Math.Max(1, e.TotalSteps));
                    switch (e.Kind)
                    {
                        case TrainingEventKind.Step:
                            task.Value = e.Step;
                            task.Description = string.Create(CultureInfo.InvariantCulture,
                                $"step {e.Step}/{e.TotalSteps} epoch {e.Epoch:F2} loss {e.Loss:F4} lr {e.LearningRate:E2} {e.TokensPerSecond:F0} tok/s");
                            break;
                        case TrainingEventKind.Started:
                            task.Value = e.Step;
                            console.MarkupLine($"[grey]{Markup.Escape(e.Message ?? "")}[/]");
                            break;
                        case TrainingEventKind.Evaluation:
                            console.MarkupLine($"[blue]eval @ step {e.Step}:[/] {Markup.Escape(FormatMetrics(e.Metrics))}");
                            break;
                        case TrainingEventKind.Checkpoint:
                            console.MarkupLine($"[grey]checkpoint {Markup.Escape(e.Path ?? "")}[/]");
                            break;
                        case TrainingEventKind.EarlyStopped or TrainingEventKind.Cancelled:
                            console.MarkupLine($"[yellow]{Markup.Escape(e.Message ?? "")}[/]");
                            break;
                        case TrainingEventKind.Completed:
                            task.StopTask();
                            console.MarkupLine($"[green]{Markup.Escape(e.Message ?? "")}[/]: {Markup.Escape(e.Path ?? "")}");
                            break;
                    }
                });
                result = plan.Run(progress, cancellation).Training;
            });
        return result!;
    }

    private static string FormatMetrics(IReadOnlyDictionary<string, double>? m) =>
        m is null ? "" : string.Join(", ", m.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:F4}")));
}
