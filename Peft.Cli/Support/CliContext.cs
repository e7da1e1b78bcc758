using Spectre.Console;

namespace Peft.Cli.Support;

/// <summary>Where a command writes, and how it shows progress.</summary>
public sealed class CliContext(TextWriter stdout, TextWriter stderr)
{
    public TextWriter Out { get; } = stdout;
    public TextWriter Err { get; } = stderr;

    /// <summary>A spinner only makes sense on a real terminal; captured or piped output must stay plain text.</summary>
    public bool Interactive => ReferenceEquals(Out, Console.Out) && !Console.IsOutputRedirected;

    /// <summary>Runs a slow step (loading weights), with a Spectre.Console spinner when interactive.</summary>
    public T Step<T>(string description, Func<T> work) =>
        Interactive ? AnsiConsole.Status().Start(Markup.Escape(description), _ => work()) : work();
}

/// <summary>A bad argument combination or value detected by the tool itself (exit code 2).</summary>
public sealed class UsageException(string message) : PeftUserException(message, UserErrorKind.BadRequest);
