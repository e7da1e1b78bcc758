using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Peft.Tests.Tokenization;

/// <summary>
/// Textbook BPE written independently of the native engine, to cross-check it on the fixtures (text without
/// special tokens, add_special_tokens=false). Covers byte-level BPE behind a regex split and SentencePiece-style
/// BPE with byte fallback.
/// </summary>
internal sealed class ReferenceBpe
{
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    public const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private readonly Dictionary<string, int> _vocab = new();
    private readonly Dictionary<(string, string), int> _ranks = new();

    public ReferenceBpe(string tokenizerJsonPath)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(tokenizerJsonPath));
        var model = doc.RootElement.GetProperty("model");
        foreach (var p in model.GetProperty("vocab").EnumerateObject()) _vocab[p.Name] = p.Value.GetInt32();
        int rank = 0;
        foreach (var m in model.GetProperty("merges").EnumerateArray())
        {
            var pair = m.ValueKind == JsonValueKind.String ? m.GetString()!.Split(' ', 2) : new[] { m[0].GetString()!, m[1].GetString()! };
            _ranks[(pair[0], pair[1])] = rank++;
        }
    }

    /// <summary>GPT-2's printable stand-ins for bytes (ByteLevel alphabet).</summary>
    public static char[] ByteToChar()
    {
        var map = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)(256 + n++);
        }
        return map;
    }

    public List<int> EncodeByteLevel(string text, string pattern)
    {
        var b2c = ByteToChar();
        var ids = new List<int>();
        foreach (Match m in Regex.Matches(text, pattern))
        {
            var symbols = Encoding.UTF8.GetBytes(m.Value).Select(b => b2c[b].ToString()).ToList();
            ids.AddRange(Merge(symbols).Select(s => _vocab[s]));
        }
        return ids;
    }

    public List<int> EncodeSentencePiece(string text)
    {
        if (text.Length == 0) return new List<int>();
        string normalized = "▁" + text.Replace(" ", "▁");
        var symbols = new List<string>();
        foreach (var rune in normalized.EnumerateRunes())
        {
            string s = rune.ToString();
            if (_vocab.ContainsKey(s)) symbols.Add(s);
            else symbols.AddRange(Encoding.UTF8.GetBytes(s).Select(b => $"<0x{b:X2}>"));
        }
        return Merge(symbols).Select(s => _vocab[s]).ToList();
    }

    // Repeatedly merges every occurrence of the best-ranked adjacent pair (GPT-2's bpe()).
    private List<string> Merge(List<string> word)
    {
        while (word.Count > 1)
        {
            (string, string)? best = null;
            int bestRank = int.MaxValue;
            for (int i = 0; i + 1 < word.Count; i++)
                if (_ranks.TryGetValue((word[i], word[i + 1]), out int r) && r < bestRank)
                    (best, bestRank) = ((word[i], word[i + 1]), r);
            if (best is not { } pair) break;
            var next = new List<string>(word.Count);
            for (int i = 0; i < word.Count; i++)
                if (i + 1 < word.Count && word[i] == pair.Item1 && word[i + 1] == pair.Item2)
                {
                    next.Add(pair.Item1 + pair.Item2);
                    i++;
                }
                else next.Add(word[i]);
            word = next;
        }
        return word;
    }
}
