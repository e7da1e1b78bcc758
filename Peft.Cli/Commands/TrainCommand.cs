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
        var config = new Option<string>("--config") { Description = "JSON file with any of these settings (keys like lora_alpha); flags win" };
        command.Options.Add(config);
        var options = new List<(TrainSetting Setting, Option Option)>();
        foreach (var s in TrainSettings.All)
        {
            // Values are parsed by TrainSettings so that a bad value is exit code 2 with the flag named, like config fields.
            Option option = s.Type == TrainSetting.Kind.Flag
                ? new Option<bool>(s.Flag) { Description = s.Help }
                : new Option<string>(s.Flag) { Description = s.Help };
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
                    throw new CliUsageException($"unknown argument '{parse.UnmatchedTokens[0]}' (see peft train --help)");
                var settings = new TrainSettings();
                if (parse.GetValue(config) is { } path) settings.LoadConfig(path);
                foreach (var (s, option) in options)
                {
                    var result = parse.GetResult(option);
                    if (result is null || result.Implicit) continue;
                    JsonNode? value = option is Option<bool> flag ? JsonValue.Create(parse.GetValue(flag)) : JsonValue.Create(parse.GetValue((Option<string>)option));
                    settings.Set(s, value);
                }
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(token);
                using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; cts.Cancel(); });
                using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; cts.Cancel(); });
                // Training is synchronous CPU work; run it off the invocation thread so signals are handled promptly.
                return await Task.Run(() => TrainRunner.Run(settings, stdout, stderr, cts.Token), CancellationToken.None);
            }
            catch (CliUsageException e)
            {
                stderr.WriteLine($"error: {e.Message}");
                return 2;
            }
        });
        return command;
    }
}
