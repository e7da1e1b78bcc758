using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Peft.Web.Jobs;

/// <summary>
/// One training child process: stdout lines (JSON events) and stderr lines (logs) come out of <see cref="Lines"/>;
/// <see cref="RequestStop"/> sends SIGTERM (the trainer writes a checkpoint and exits 130), <see cref="Kill"/> SIGKILL.
/// stdin stays open: the child exits when it closes, so it never outlives its supervisor.
/// </summary>
internal sealed partial class TrainingProcess : IDisposable
{
    private readonly Process _process;
    private readonly System.Threading.Channels.Channel<(string Line, bool IsError)> _lines =
        System.Threading.Channels.Channel.CreateUnbounded<(string, bool)>(new() { SingleReader = true });
    private readonly Task _pumps;

    private TrainingProcess(Process process)
    {
        _process = process;
        _pumps = Task.WhenAll(Pump(process.StandardOutput, false), Pump(process.StandardError, true))
            .ContinueWith(_ => _lines.Writer.TryComplete(), TaskScheduler.Default);
    }

    public int Id => _process.Id;

    public System.Threading.Channels.ChannelReader<(string Line, bool IsError)> Lines => _lines.Reader;

    public static TrainingProcess Start(IReadOnlyList<string> command, string workDir)
    {
        var psi = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workDir,
        };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {command[0]}");
        return new TrainingProcess(p);
    }

    /// <summary>This binary's hidden train-child role, run by the same dotnet host.</summary>
    public static List<string> DefaultCommand()
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h && File.Exists(h) ? h
            : Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        return [dotnet, typeof(TrainChild).Assembly.Location, "--role", TrainChild.Role];
    }

    private async Task Pump(StreamReader reader, bool isError)
    {
        while (await reader.ReadLineAsync() is { } line) await _lines.Writer.WriteAsync((line, isError));
    }

    public async Task<int> WaitAsync(CancellationToken ct)
    {
        await _process.WaitForExitAsync(ct);
        await _pumps;
        return _process.ExitCode;
    }

    public bool HasExited => _process.HasExited;

    private int _stopRequested;

    /// <summary>SIGTERM, once: a second one could land after the trainer's handler is gone (while it exits after its
    /// checkpoint) and turn a clean cancel (130) into the runtime's default 143.</summary>
    public void RequestStop()
    {
        if (Interlocked.Exchange(ref _stopRequested, 1) == 0 && !_process.HasExited) _ = Kill(_process.Id, 15);
    }

    public void Kill()
    {
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
