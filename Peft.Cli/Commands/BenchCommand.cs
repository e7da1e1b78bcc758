using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Bench;
using Peft.Cli.Support;
using Peft.Training.IO;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft bench &lt;suite&gt;...</c>: whole-process benchmarks (train, adapter, infer, load or all). Rows whose peak
/// memory matters run in a fresh <c>peft bench-row</c> child process. Prints a Markdown table; writes JSON.
/// </summary>
internal static class BenchCommand
{
    public static Command Create(CliContext ctx)
    {
        var suites = new Argument<string[]>("suite") { Description = "train, adapter, infer, load, quant, serve or all", Arity = ArgumentArity.OneOrMore };
        var quick = new Option<bool>("--quick") { Description = "Small shapes and few steps: every suite in a few minutes (checks the benchmark runs; numbers not comparable)" };
        var configs = new Option<string[]>("--config") { Description = "Config name (tiny10m, small50m, base120m) or config.json path; repeatable", HelpName = "NAME|FILE" };
        var methods = new Option<string[]>("--method") { Description = $"Method rows to run; repeatable ({string.Join(", ", BenchMethods.All.Keys)})", HelpName = "M" };
        var batch = new Option<int?>("--batch") { Description = "Batch size override", HelpName = "N" };
        var seq = new Option<int?>("--seq") { Description = "Sequence length override", HelpName = "N" };
        var threads = new Option<int?>("--threads") { Description = "torch intra-op threads (default: libtorch's choice)", HelpName = "N" };
        var json = new Option<string>("--json") { Description = "Where to write the JSON results", HelpName = "FILE", DefaultValueFactory = _ => "bench-results.json" };
        var markdown = new Option<string?>("--markdown") { Description = "Also write the Markdown report to this file", HelpName = "FILE" };
        var cmd = new Command("bench", "Measure training/inference speed, memory and adapter sizes") { suites, quick, configs, methods, batch, seq, threads, json, markdown };
        cmd.SetAction(p =>
        {
            var names = p.GetValue(suites)!.SelectMany(s => s == "all" ? BenchRunner.Suites : [s]).Distinct().ToList();
            var opts = new BenchOptions
            {
                Quick = p.GetValue(quick),
                Configs = NullIfEmpty(p.GetValue(configs)),
                Methods = NullIfEmpty(p.GetValue(methods)),
                Batch = Positive(p.GetValue(batch), "--batch"),
                Seq = Positive(p.GetValue(seq), "--seq"),
                Threads = Positive(p.GetValue(threads), "--threads"),
            };
            foreach (var m in opts.Methods ?? []) BenchMethods.Create(m);
            foreach (var c in opts.Configs ?? []) BenchConfigs.Resolve(c);
            var report = BenchRunner.Run(names, opts, RunChild, ctx.Err);
            string md = report.ToMarkdown();
            ctx.Out.WriteLine(md);
            AtomicFile.WriteAllText(p.GetValue(json)!, report.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            if (p.GetValue(markdown) is { } mdPath) AtomicFile.WriteAllText(mdPath, md);
            return CliApp.Success;
        });
        return cmd;
    }

    /// <summary>Hidden child-process entry: one measurement as JSON in, JSON out (last stdout line).</summary>
    public static Command CreateRow(CliContext ctx)
    {
        var spec = new Argument<string>("spec");
        var cmd = new Command("bench-row", "Internal: one benchmark measurement (used by peft bench)") { spec };
        cmd.Hidden = true;
        cmd.SetAction(p =>
        {
            var node = JsonNode.Parse(p.GetValue(spec)!) as JsonObject ?? throw new UsageException("bench-row expects a JSON object");
            ctx.Out.WriteLine(BenchRunner.RunRow(node).ToJsonString());
            return CliApp.Success;
        });
        return cmd;
    }

    private static JsonObject RunChild(JsonObject spec)
    {
        // peft.dll sits next to this assembly both in the tool's folder and in the test output folder.
        string dll = Path.Combine(AppContext.BaseDirectory, "peft.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add("bench-row");
        psi.ArgumentList.Add(spec.ToJsonString());
        using var proc = Process.Start(psi) ?? throw new InvalidOperationException("could not start a benchmark child process");
        var stderr = proc.StandardError.ReadToEndAsync();
        string stdout = proc.StandardOutput.ReadToEnd();
        proc.WaitForExit();
        string? last = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault();
        if (proc.ExitCode != 0 || last is null)
            return new JsonObject { ["error"] = $"child exited with {proc.ExitCode}: {stderr.Result.Trim().Split('\n').LastOrDefault()}" };
        return JsonNode.Parse(last) as JsonObject ?? new JsonObject { ["error"] = "child printed no JSON" };
    }

    private static IReadOnlyList<string>? NullIfEmpty(string[]? xs) => xs is { Length: > 0 } ? xs : null;

    private static int? Positive(int? v, string name) =>
        v is int i && i <= 0 ? throw new UsageException($"{name} must be positive, got {i}") : v;
}
