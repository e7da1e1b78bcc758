using Peft.Cli.Support;
using Peft.Training.FineTuning;
using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft train</c>: fine-tunes an adapter (or the whole model with <c>--method full</c>) on a data file. A thin shell
/// over <see cref="FineTunePlan"/>: one flag per <see cref="FineTuneRequest"/> key (<c>lora_alpha</c> ↔
/// <c>--lora-alpha</c>), a JSON <c>--config</c> with the same keys, and progress on stdout.
/// Exit codes: 0 done, 2 bad input (one line naming the flag, field or file), 130 cancelled (a checkpoint was written;
/// <c>--resume</c> continues), 1 unexpected failure.
/// </summary>
public static class TrainCommand
{
    private const string JsonEventsKey = "json_events";

    public static Command Create()
    {
        var command = new Command("train", "Fine-tune an adapter (LoRA, DoRA, ...) or a whole model on a data file.")
        {
            // Unknown flags are reported by the action (exit code 2), not as parser errors (exit code 1).
            TreatUnmatchedTokensAsErrors = false,
        };
        // Every option takes any number of values and the last one wins, so repeating a flag (e.g. overriding a script's
        // default) is not a parser error; values are parsed by FineTuneRequest, so a bad value exits with code 2 and
        // names the flag, exactly like a bad config field.
        var config = Multi("--config", "JSON file with any of these settings (keys like lora_alpha, see docs/FINE-TUNING.md); flags win");
        command.Options.Add(config);
        var options = new List<(string Key, string Flag, bool IsFlag, Option<string[]> Option)>();
        foreach (var k in FineTuneRequest.Keys)
        {
            string flag = Flag(k.Alias ?? k.Name);
            var option = Multi(flag, k.Default is null ? k.Help : $"{k.Help} (default {k.Default})");
            if (k.Alias is not null) option.Aliases.Add(Flag(k.Name));
            command.Options.Add(option);
            options.Add((k.Name, flag, k.Kind == RequestKey.ValueKind.Flag, option));
        }
        var jsonEvents = Multi("--json-events", "print one JSON event per line instead of a progress bar");
        command.Options.Add(jsonEvents);
        options.Add((JsonEventsKey, "--json-events", true, jsonEvents));
        command.SetAction(async (parse, token) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            try
            {
                if (parse.UnmatchedTokens.Count > 0)
                    throw new UsageException($"unknown argument '{parse.UnmatchedTokens[0]}' (see peft train --help)");
                var json = new JsonObject();
                var labels = new Dictionary<string, string>();
                if (Last(parse, config, "--config") is { } path) LoadConfig(path, json, labels);
                foreach (var (key, flag, isFlag, option) in options)
                {
                    if (parse.GetResult(option) is null) continue;
                    // A bare flag means true; anything else is the (last) value given.
                    json[key] = isFlag && parse.GetValue(option) is { Length: 0 } ? "true" : Last(parse, option, flag);
                    labels[key] = flag;
                }
                bool events = TakeJsonEvents(json, labels);
                var request = FineTuneRequest.FromJson(json, k => labels.TryGetValue(Canonical(k), out var l) ? l : Flag(k));
                var plan = FineTunePlan.Create(request, new FineTuneEnvironment { ModelRoots = ModelRoots.FromEnvironment() });
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(token);
                using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; cts.Cancel(); });
                using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; cts.Cancel(); });
                // Training is synchronous CPU work; run it off the invocation thread so signals are handled promptly.
                return await Task.Run(() => TrainRunner.Run(plan, events, stdout, stderr, cts.Token), CancellationToken.None);
            }
            catch (PeftUserException e)
            {
                stderr.WriteLine($"error: {e.Message.ReplaceLineEndings(" ")}");
                return CliApp.BadInput;
            }
        });
        return command;
    }

    private static string Flag(string key) => "--" + key.Replace('_', '-');

    private static string Canonical(string spelled) => FineTuneRequest.FindKey(spelled)?.Name ?? spelled.Replace('-', '_');

    /// <summary>A config file: a JSON object whose keys are request keys (<c>lora_alpha</c> or <c>lora-alpha</c>).</summary>
    private static void LoadConfig(string path, JsonObject into, Dictionary<string, string> labels)
    {
        if (!File.Exists(path)) throw new UsageException($"{path}: config file not found");
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new UsageException($"{path}: invalid JSON ({e.Message})"); }
        if (node is not JsonObject obj) throw new UsageException($"{path}: expected a JSON object");
        foreach (var (key, value) in obj)
        {
            string canonical = key.Replace('-', '_') == JsonEventsKey ? JsonEventsKey : Canonical(key);
            into[canonical] = value?.DeepClone();
            labels[canonical] = $"{path}: field '{key}'";
        }
    }

    /// <summary>json_events is the CLI's display choice, not part of the job.</summary>
    private static bool TakeJsonEvents(JsonObject json, Dictionary<string, string> labels)
    {
        if (!json.Remove(JsonEventsKey, out var v) || v is null) return false;
        if (v is JsonValue jv && (jv.TryGetValue<bool>(out var b) || (jv.TryGetValue<string>(out var s) && bool.TryParse(s, out b)))) return b;
        throw new UsageException($"{labels[JsonEventsKey]}: expected true or false, got {v.ToJsonString()}");
    }

    private static Option<string[]> Multi(string name, string help) =>
        new(name) { Description = help, Arity = ArgumentArity.ZeroOrMore, AllowMultipleArgumentsPerToken = false };

    private static string? Last(ParseResult parse, Option<string[]> option, string flag)
    {
        if (parse.GetResult(option) is null) return null;
        var values = parse.GetValue(option);
        return values is { Length: > 0 } ? values[^1] : throw new UsageException($"{flag}: expected a value");
    }
}
