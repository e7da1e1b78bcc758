using Peft.Cli.Support;
using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft train</c>: fine-tunes an adapter (or the whole model with <c>--method full</c>) on a data file.
/// Exit codes: 0 done, 2 bad input (one line naming the flag, field or file), 130 cancelled (a checkpoint was written;
/// <c>--resume</c> continues), 1 unexpected failure.
/// </summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var command = new Command("train", "Fine-tune an adapter (LoRA, DoRA, ...) or a whole model on a data file.")
        {
            // Unknown flags are reported by the action (exit code 2), not as parser errors (exit code 1).
            TreatUnmatchedTokensAsErrors = false,
        };
        // Every option takes any number of values and the last one wins, so repeating a flag (e.g. overriding a script's
        // default) is not a parser error; values are parsed by TrainSettings, so a bad value exits with code 2 and names
        // the flag, exactly like a bad config field.
        var config = Multi("--config", "JSON file with any of these settings (keys like lora_alpha); flags win");
        command.Options.Add(config);
        var options = new List<(TrainSetting Setting, Option<string[]> Option)>();
        foreach (var s in TrainSettings.All)
        {
            var option = Multi(s.Flag, s.Help);
            command.Options.Add(option);
            options.Add((s, option));
        }
        command.SetAction(async (parse, token) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            try
            {
                if (parse.UnmatchedTokens.Count > 0)
                    throw new UsageException($"unknown argument '{parse.UnmatchedTokens[0]}' (see peft train --help)");
                var settings = new TrainSettings();
                if (Last(parse, config, "--config") is { } path) settings.LoadConfig(path);
                foreach (var (s, option) in options)
                {
                    if (parse.GetResult(option) is null) continue;
                    // A bare flag means true; anything else is the (last) value given.
                    string? value = s.Type == TrainSetting.Kind.Flag && parse.GetValue(option) is { Length: 0 } ? "true" : Last(parse, option, s.Flag);
                    settings.Set(s, s.Type == TrainSetting.Kind.Flag ? ParseFlag(s.Flag, value!) : JsonValue.Create(value));
                }
                settings.ValidateTypes();
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(token);
                using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; cts.Cancel(); });
                using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; cts.Cancel(); });
                // Training is synchronous CPU work; run it off the invocation thread so signals are handled promptly.
                return await Task.Run(() => TrainRunner.Run(settings, stdout, stderr, cts.Token), CancellationToken.None);
            }
            catch (UsageException e)
            {
                stderr.WriteLine($"error: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    private static Option<string[]> Multi(string name, string help) =>
        new(name) { Description = help, Arity = ArgumentArity.ZeroOrMore, AllowMultipleArgumentsPerToken = false };

    private static string? Last(ParseResult parse, Option<string[]> option, string flag)
    {
        if (parse.GetResult(option) is null) return null;
        var values = parse.GetValue(option);
        return values is { Length: > 0 } ? values[^1] : throw new UsageException($"{flag}: expected a value");
    }

    private static JsonNode ParseFlag(string flag, string value) => value.ToLowerInvariant() switch
    {
        "true" or "1" or "yes" => JsonValue.Create(true),
        "false" or "0" or "no" => JsonValue.Create(false),
        _ => throw new UsageException($"{flag}: expected true or false, got '{value}'"),
    };
}
