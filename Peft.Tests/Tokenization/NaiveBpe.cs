using System.Text;
using System.Text.RegularExpressions;
using Peft.Training.Tokenization;

namespace Peft.Tests.Tokenization;

/// <summary>
/// Textbook BPE training that recounts every pair after every merge: slow, but obviously right, to check the
/// trainer's incremental bookkeeping. Same conventions: ids = 2 specials, 256 bytes, then merges; ties to smaller ids.
/// </summary>
internal static class NaiveBpe
{
    public static List<(string, string)> Merges(IEnumerable<string> texts, int vocabSize, int minFrequency)
    {
        var counts = new Dictionary<string, long>();
        foreach (var t in texts)
            foreach (Match m in Regex.Matches(t, ByteLevel.Gpt2Pattern))
                counts[m.Value] = counts.GetValueOrDefault(m.Value) + 1;
        var id = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++) id[ByteLevel.ByteToChar((byte)b).ToString()] = 2 + b;
        int size = 258;
        var words = counts.Select(kv => (Symbols: Encoding.UTF8.GetBytes(kv.Key).Select(b => ByteLevel.ByteToChar(b).ToString()).ToList(), Count: kv.Value)).ToList();
        var merges = new List<(string, string)>();
        while (size < vocabSize)
        {
            var pairs = new Dictionary<(string, string), long>();
            foreach (var (s, n) in words)
                for (int i = 0; i + 1 < s.Count; i++) pairs[(s[i], s[i + 1])] = pairs.GetValueOrDefault((s[i], s[i + 1])) + n;
            if (pairs.Count == 0) break;
            var best = pairs.OrderByDescending(p => p.Value).ThenBy(p => id[p.Key.Item1]).ThenBy(p => id[p.Key.Item2]).First();
            if (best.Value < minFrequency) break;
            var (l, r) = best.Key;
            merges.Add((l, r));
            if (id.TryAdd(l + r, size)) size++;
            foreach (var (s, _) in words)
                for (int i = 0; i + 1 < s.Count; i++)
                    if (s[i] == l && s[i + 1] == r)
                    {
                        s[i] = l + r;
                        s.RemoveAt(i + 1);
                    }
        }
        return merges;
    }
}
