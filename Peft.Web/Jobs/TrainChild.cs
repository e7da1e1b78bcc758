using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Training.FineTuning;
using Peft.Core;
using Peft.Training.Training;

namespace Peft.Web.Jobs;

/// <summary>
/// The hidden <c>--role train-child --config FILE.json</c> entry point: one training run of a job, over the same
/// fine-tuning service as <c>peft train</c> (<see cref="FineTunePlan"/>), printing one JSON event per line
/// (<see cref="TrainingEvent.ToJson"/>). Exit codes as <c>peft train</c>: 0 done, 2 bad input, 130 cancelled by SIGTERM
/// (a checkpoint was written), 1 unexpected. It exits as soon as its stdin closes, i.e. when the supervisor dies (even by
/// kill -9), so an orphaned trainer never keeps writing the job's checkpoints while a new attempt resumes from them.
/// </summary>
public static class TrainChild
{
    public const string Role = "train-child";
    public const int Success = 0, Unexpected = 1, BadInput = 2, Cancelled = 130;
    private static readonly CancellationTokenSource s_stop = new();
    // Held in statics so they are never collected or disposed before the process exits.
    private static PosixSignalRegistration? s_sigterm, s_sigint;

    /// <summary>Runs the child when <paramref name="args"/> start with <c>--role train-child</c>; otherwise returns null.</summary>
    public static int? TryRun(string[] args)
    {
        if (args.Length < 2 || args[0] != "--role" || args[1] != Role) return null;
        // Handlers first and for the life of the process (static, never disposed): a SIGTERM that comes before training
        // starts or after it returned must not get the runtime's default exit (143).
        s_sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; s_stop.Cancel(); });
        s_sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; s_stop.Cancel(); });
        var watchdog = new Thread(() =>
        {
            try { while (Console.In.Read() >= 0) { } }
            catch (IOException) { }
            // The supervisor is gone: no one would persist our events or register our result. SIGKILL ourselves: a
            // normal exit would run native teardown under libtorch's running threads.
            System.Diagnostics.Process.GetCurrentProcess().Kill();
        }) { IsBackground = true, Name = "supervisor-watchdog" };
        watchdog.Start();
        if (args.Length != 4 || args[2] != "--config")
        {
            Console.Error.WriteLine("error: usage: --role train-child --config FILE.json");
            return BadInput;
        }
        return Run(args[3], Console.Out, Console.Error);
    }

    private static int Run(string configPath, TextWriter stdout, TextWriter stderr)
    {
        var cts = s_stop;
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject
                ?? throw new PeftUserException($"{configPath}: expected a JSON object");
            var plan = FineTunePlan.Create(FineTuneRequest.FromJson(json));
            var progress = new SyncProgress<TrainingEvent>(e =>
            {
                stdout.WriteLine(e.ToJson());
                stdout.Flush();
            });
            var result = plan.Run(progress, cts.Token);
            return result.Cancelled ? Cancelled : Success;
        }
        catch (PeftUserException e)
        {
            stderr.WriteLine($"error: {e.Message.ReplaceLineEndings(" ")}");
            return BadInput;
        }
        catch (JsonException e)
        {
            stderr.WriteLine($"error: {configPath}: invalid JSON ({e.Message})");
            return BadInput;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"error: unexpected {e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}");
            return Unexpected;
        }
    }
}
