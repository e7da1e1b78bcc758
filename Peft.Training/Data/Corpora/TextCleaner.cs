using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Peft.Training.Data.Corpora;

/// <summary>Text clean-up shared by the corpus readers: whitespace, paragraphs, Gutenberg boilerplate, chunking.</summary>
public static partial class TextCleaner
{
    /// <summary>
    /// One line of prose: every run of whitespace (tabs, no-break spaces, newlines) becomes one space, control and
    /// format characters other than whitespace are dropped (stray \x02, BOMs, soft hyphens), ends are trimmed.
    /// </summary>
    public static string NormalizeWhitespace(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var sb = new StringBuilder(text.Length);
        bool pendingSpace = false;
        foreach (char c in text)
        {
            if (char.IsWhiteSpace(c))
            {
                pendingSpace = sb.Length > 0;
                continue;
            }
            var cat = char.GetUnicodeCategory(c);
            if (cat is UnicodeCategory.Control or UnicodeCategory.Format) continue;
            if (pendingSpace) sb.Append(' ');
            pendingSpace = false;
            sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>
    /// Splits text into paragraphs at blank lines; the lines of a paragraph are joined with spaces (hard-wrapped
    /// e-texts) and normalised. Empty paragraphs are dropped.
    /// </summary>
    public static List<string> Paragraphs(IEnumerable<string?> lines)
    {
        var result = new List<string>();
        var current = new StringBuilder();
        foreach (var line in lines.Append(""))
        {
            if (string.IsNullOrWhiteSpace(line))
            {
                if (current.Length > 0) result.Add(NormalizeWhitespace(current.ToString()));
                current.Clear();
                continue;
            }
            if (current.Length > 0) current.Append(' ');
            current.Append(line);
        }
        result.RemoveAll(p => p.Length == 0);
        return result;
    }

    /// <summary>Lines of a text, whatever its line endings.</summary>
    public static string[] Lines(string text) => text.ReplaceLineEndings("\n").Split('\n');

    /// <summary>
    /// Drops the Project Gutenberg header (everything up to the "*** START OF ..." line) and footer (from the
    /// "*** END OF ..." or "End of the Project Gutenberg ..." line on). Texts without the markers are returned whole.
    /// </summary>
    public static string[] StripGutenberg(IReadOnlyList<string> lines)
    {
        int start = 0, end = lines.Count;
        for (int i = 0; i < lines.Count; i++)
            if (GutenbergStart().IsMatch(lines[i])) { start = i + 1; break; }
        for (int i = start; i < lines.Count; i++)
            if (GutenbergEnd().IsMatch(lines[i])) { end = i; break; }
        return lines.Skip(start).Take(end - start).ToArray();
    }

    [GeneratedRegex(@"^\s*\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG", RegexOptions.IgnoreCase)]
    private static partial Regex GutenbergStart();

    [GeneratedRegex(@"^\s*(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg)", RegexOptions.IgnoreCase)]
    private static partial Regex GutenbergEnd();

    /// <summary>
    /// Cuts one long normalised text (the State of the Union files have no paragraph breaks) into chunks of whole
    /// sentences of at most <paramref name="maxChars"/> characters; a longer sentence is cut at spaces.
    /// </summary>
    public static List<string> ChunkSentences(string text, int maxChars)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxChars, 16);
        var chunks = new List<string>();
        var current = new StringBuilder();
        foreach (var sentence in SentenceBoundary().Split(text))
        {
            if (sentence.Length == 0) continue;
            foreach (var piece in sentence.Length <= maxChars ? [sentence] : CutAtSpaces(sentence, maxChars))
            {
                if (current.Length > 0 && current.Length + 1 + piece.Length > maxChars)
                {
                    chunks.Add(current.ToString());
                    current.Clear();
                }
                if (current.Length > 0) current.Append(' ');
                current.Append(piece);
            }
        }
        if (current.Length > 0) chunks.Add(current.ToString());
        return chunks;
    }

    // After ., ! or ? (and closing quotes/brackets), before something that can start a sentence.
    [GeneratedRegex(@"(?<=[.!?][""'”’)\]]*) +(?=[""'“‘(\[]?[A-Z0-9])")]
    private static partial Regex SentenceBoundary();

    private static IEnumerable<string> CutAtSpaces(string s, int maxChars)
    {
        int pos = 0;
        while (s.Length - pos > maxChars)
        {
            int cut = s.LastIndexOf(' ', pos + maxChars, maxChars);
            if (cut <= pos) cut = pos + maxChars;   // one enormous "word": hard cut
            yield return s[pos..cut].Trim();
            pos = cut;
        }
        if (pos < s.Length) yield return s[pos..].Trim();
    }
}
