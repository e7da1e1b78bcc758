using System.Text.RegularExpressions;

namespace Peft.Training.Data.Corpora;

/// <summary>One paragraph of a novel. <c>Chapter</c> counts chapter headings from 1 (0 = text before the first).</summary>
public sealed record AustenParagraph(string Text, string Book, int Chapter, string Split);

/// <summary>
/// Jane Austen's six novels from the Debian package r-cran-janeaustenr (public-domain Gutenberg texts, MIT-licensed
/// packaging), read straight from its lazy-load database data/Rdata.rdx/.rdb: each novel is a character vector
/// with one element per printed line and "" between paragraphs.
/// </summary>
public static partial class AustenCorpus
{
    /// <summary>Object name in the database → the title janeaustenr's austen_books() uses, in publication order.</summary>
    public static readonly IReadOnlyList<(string Object, string Title)> Books =
    [
        ("sensesensibility", "Sense & Sensibility"), ("prideprejudice", "Pride & Prejudice"),
        ("mansfieldpark", "Mansfield Park"), ("emma", "Emma"), ("northangerabbey", "Northanger Abbey"),
        ("persuasion", "Persuasion"),
    ];

    /// <summary>Reads the package installed or extracted under <paramref name="packageDir"/> (…/janeaustenr).</summary>
    public static List<AustenParagraph> Read(string packageDir)
    {
        var db = RLazyLoadDb.Open(Path.Combine(packageDir, "data", "Rdata.rdx"));
        var result = new List<AustenParagraph>();
        foreach (var (obj, title) in Books)
        {
            if (db.Read(obj) is not RStrings lines)
                throw new PeftUserException($"janeaustenr object '{obj}' is not a character vector.", UserErrorKind.Invalid);
            result.AddRange(FromLines(obj, title, lines.Values));
        }
        return result;
    }

    /// <summary>
    /// Paragraphs of one novel. Dropped: chapter and volume headings (which advance the chapter count), the title
    /// block before the first chapter (paragraphs under 8 words: "EMMA", "by", "Jane Austen (1803)"), separators
    /// without letters ("* * * * *"), and everything from "THE END"/"FINIS" or the editor's "A NOTE ON THE TEXT" on.
    /// The split is by chapter, so a chapter's paragraphs stay together.
    /// </summary>
    public static IEnumerable<AustenParagraph> FromLines(string bookId, string title, IReadOnlyList<string?> lines)
    {
        int chapter = 0;
        foreach (var p in TextCleaner.Paragraphs(TextCleaner.StripGutenberg(lines.Select(l => l ?? "").ToList())))
        {
            if (ChapterHeading().IsMatch(p))
            {
                chapter++;
                continue;
            }
            if (EndMarker().IsMatch(p)) yield break;
            if (VolumeHeading().IsMatch(p) || !p.Any(char.IsLetter)) continue;
            if (chapter == 0 && p.Split(' ').Length < 8) continue;
            yield return new AustenParagraph(p, title, chapter, DataSplits.Assign($"austen/{bookId}/{chapter}"));
        }
    }

    [GeneratedRegex(@"^chapter\s+([ivxlc]+|\d+)\.?$", RegexOptions.IgnoreCase)]
    private static partial Regex ChapterHeading();

    [GeneratedRegex(@"^volume\s+([ivxlc]+|\d+)\.?$", RegexOptions.IgnoreCase)]
    private static partial Regex VolumeHeading();

    [GeneratedRegex(@"^(the end|finis|a note on the text)\.?$", RegexOptions.IgnoreCase)]
    private static partial Regex EndMarker();
}
