using System.CommandLine;
using Peft.Cli.Commands;
using Peft.Cli.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tuners;

namespace Peft.Cli;

/// <summary>
/// The <c>peft</c> command line tool. <see cref="Run"/> is the whole program behind an explicit stdout/stderr pair,
/// so tests drive every command in-process and read what it printed.
/// Exit codes: 0 success, 2 bad input or usage (one <c>error: ...</c> line on stderr), 1 anything unexpected.
/// </summary>
public static class CliApp
{
    public const int Success = 0;
    public const int UnexpectedError = 1;
    public const int BadInput = 2;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = BuildRoot(new CliContext(stdout, stderr));
        var parse = root.Parse(args);
        // --help/--version clear parse errors (e.g. `peft forward --help` without the required options).
        if (parse.Errors.Count > 0 && parse.Action is not { ClearsParseErrors: true })
        {
            // "Required command was not provided" comes first for `peft typo`; the unknown token is the real news.
            var error = parse.Errors.FirstOrDefault(e => parse.UnmatchedTokens.Any(t => e.Message.Contains(t, StringComparison.Ordinal)))
                ?? parse.Errors[0];
            stderr.WriteLine($"error: {OneLine(error.Message)} ({Usage(parse.CommandResult.Command)})");
            return BadInput;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (IsBadInput(e))
        {
            stderr.WriteLine($"error: {OneLine(e.Message)}");
            return BadInput;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"error: unexpected {e.GetType().Name}: {OneLine(e.Message)}");
            return UnexpectedError;
        }
    }

    /// <summary>The command list. One file per command under Commands/.</summary>
    internal static RootCommand BuildRoot(CliContext ctx)
    {
        var root = new RootCommand("Inspect, run, generate with, merge and combine Hugging Face PEFT adapters (LoRA) on TorchSharp.");
        root.Subcommands.Add(ParamsCommand.Create(ctx));
        root.Subcommands.Add(ForwardCommand.Create(ctx));
        root.Subcommands.Add(MergeCommand.Create(ctx));
        root.Subcommands.Add(QuantizeCommand.Create(ctx));
        root.Subcommands.Add(CombineCommand.Create(ctx));
        root.Subcommands.Add(GenerateCommand.Create(ctx));
        root.Subcommands.Add(InfoCommand.Create(ctx));
        root.Subcommands.Add(BenchCommand.Create(ctx));
        root.Subcommands.Add(BenchCommand.CreateRow(ctx));
        root.Subcommands.Add(ImportCommand.Create(ctx));
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(ModelCommand.Create(ctx));
        root.Subcommands.Add(EvalCommand.Create(ctx));
        root.Subcommands.Add(DataCommand.Create(ctx));
        root.Subcommands.Add(TokenizerCommand.Create(ctx));
        return root;
    }

    /// <summary>"usage: peft forward &lt;model_dir&gt; [options]": the parser's messages do not name missing arguments.</summary>
    private static string Usage(Command command)
    {
        var path = new List<string>();
        for (Symbol? s = command; s is Command c and not RootCommand; s = s.Parents.FirstOrDefault()) path.Insert(0, c.Name);
        if (path.Count == 0) return "see 'peft --help'";
        string args = string.Concat(command.Arguments.Select(a => $" <{a.Name}>"));
        return $"usage: peft {string.Join(" ", path)}{args} [options]; see 'peft {string.Join(" ", path)} --help'";
    }

    /// <summary>
    /// Errors caused by the user's files or arguments (as opposed to bugs): exit code 2. Every such error derives from
    /// <see cref="PeftUserException"/>.
    /// Nothing is reclassified by its type: any other exception is a bug and exits 1.</summary>
    private static bool IsBadInput(Exception e) => e is PeftUserException;

    /// <summary>Scripts parse stderr line by line, so every error is a single line.</summary>
    private static string OneLine(string message)
    {
        var lines = message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "(no message)" : string.Join(" ", lines);
    }
}
