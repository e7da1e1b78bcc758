using System.Text;

namespace Peft.Training.Tokenization;

/// <summary>
/// A trained byte-level BPE: <c>Vocab[id]</c> is the token spelled in ByteLevel characters (specials as written),
/// <c>Merges</c> the merge rules in rank order.
/// </summary>
public sealed record BpeModel(IReadOnlyList<string> Vocab, IReadOnlyList<(string Left, string Right)> Merges,
    IReadOnlyList<string> SpecialTokens);

public sealed class BpeTrainerOptions
{
    /// <summary>Final vocabulary size, special tokens and the 256 byte symbols included.</summary>
    public int VocabSize { get; init; } = 8192;

    /// <summary>Training stops early when no pair occurs this often (a pair seen once is not worth a token).</summary>
    public int MinFrequency { get; init; } = 2;

    /// <summary>
    /// Ids 0.. in order. Default: &lt;|endoftext|&gt; (id 0; bos, eos and unk, as in GPT-2) and &lt;|pad|&gt; (id 1),
    /// a pad distinct from eos so padding can never be mistaken for a real end of text.
    /// </summary>
    public IReadOnlyList<string> SpecialTokens { get; init; } = ["<|endoftext|>", "<|pad|>"];
}

/// <summary>
/// Trains a GPT-2 style byte-level BPE, as HF tokenizers' BpeTrainer does with a ByteLevel pre-tokenizer: text is
/// split with the GPT-2 regex and counted as word types; starting from the 256 byte symbols, the most frequent
/// adjacent pair is merged into a new token until the vocabulary is full. Ties go to the pair with the smaller
/// (left id, right id), so the result depends only on the word counts. Pair counts are kept up to date
/// incrementally (only words containing the merged pair are revisited), with a lazily corrected max-heap.
/// </summary>
public sealed class BpeTrainer
{
    private readonly BpeTrainerOptions _options;
    private readonly Dictionary<string, long> _wordCounts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    public BpeTrainer(BpeTrainerOptions? options = null)
    {
        _options = options ?? new BpeTrainerOptions();
        int minimum = _options.SpecialTokens.Count + 256;
        if (_options.VocabSize < minimum)
            throw new ArgumentOutOfRangeException(nameof(options), _options.VocabSize,
                $"The vocabulary size must be at least {minimum} (special tokens plus the 256 byte symbols).");
        if (_options.SpecialTokens.Distinct().Count() != _options.SpecialTokens.Count || _options.SpecialTokens.Any(string.IsNullOrEmpty))
            throw new ArgumentException("Special tokens must be distinct and non-empty.", nameof(options));
        _lookup = _wordCounts.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Distinct pre-tokenized words seen so far.</summary>
    public int WordTypes => _wordCounts.Count;

    /// <summary>Counts the GPT-2 pre-tokens of one text (a document, paragraph or line).</summary>
    public void Feed(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (var m in ByteLevel.Gpt2Regex().EnumerateMatches(text))
        {
            var word = text.AsSpan(m.Index, m.Length);
            _lookup[word] = _lookup.TryGetValue(word, out long n) ? n + 1 : 1;
        }
    }

    public void Feed(IEnumerable<string> texts)
    {
        foreach (var t in texts) Feed(t);
    }

    private readonly record struct Entry(long Count, int Left, int Right);

    // Max-heap order on top of .NET's min-heap: higher count first, then smaller ids.
    private sealed class EntryOrder : IComparer<Entry>
    {
        public int Compare(Entry x, Entry y) =>
            x.Count != y.Count ? y.Count.CompareTo(x.Count)
            : x.Left != y.Left ? x.Left.CompareTo(y.Left)
            : x.Right.CompareTo(y.Right);
    }

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    public BpeModel Train()
    {
        var specials = _options.SpecialTokens;
        var vocab = new List<string>(specials);
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < vocab.Count; i++) ids[vocab[i]] = i;
        for (int b = 0; b < 256; b++)
        {
            string s = ByteLevel.ByteToChar((byte)b).ToString();
            ids[s] = vocab.Count;   // a special token spelled like a byte symbol is not expected; the byte wins
            vocab.Add(s);
        }
        int byteBase = specials.Count;

        // Words in ordinal order so internal arrays, like the result, never depend on input order.
        var wordList = _wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToArray();
        var words = new int[wordList.Length][];
        var freq = new long[wordList.Length];
        var pairCount = new Dictionary<long, long>();
        var pairWords = new Dictionary<long, List<int>>();
        for (int w = 0; w < wordList.Length; w++)
        {
            var bytes = Encoding.UTF8.GetBytes(wordList[w].Key);
            words[w] = bytes.Select(x => byteBase + x).ToArray();
            freq[w] = wordList[w].Value;
            for (int i = 0; i + 1 < words[w].Length; i++)
            {
                long k = Key(words[w][i], words[w][i + 1]);
                pairCount[k] = pairCount.GetValueOrDefault(k) + freq[w];
                if (!pairWords.TryGetValue(k, out var list)) pairWords[k] = list = [];
                if (list.Count == 0 || list[^1] != w) list.Add(w);
            }
        }

        var heap = new PriorityQueue<long, Entry>(new EntryOrder());
        foreach (var (k, n) in pairCount) heap.Enqueue(k, new Entry(n, (int)(k >> 32), (int)k));

        var merges = new List<(string, string)>();
        var stamp = new int[words.Length];
        var deltas = new Dictionary<long, long>();
        var rebuilt = new List<int>();
        int round = 0;
        while (vocab.Count < _options.VocabSize && heap.TryDequeue(out long key, out var top))
        {
            long current = pairCount.GetValueOrDefault(key);
            if (current != top.Count)
            {
                // Decreases are not pushed when they happen; re-queue at the true count. A smaller stale entry is
                // simply dropped: every increase pushed an exact one.
                if (current > 0 && current < top.Count) heap.Enqueue(key, top with { Count = current });
                continue;
            }
            if (current < _options.MinFrequency) break;   // the validated top is the true maximum

            int a = top.Left, b = top.Right;
            string merged = vocab[a] + vocab[b];
            if (!ids.TryGetValue(merged, out int c))
            {
                c = vocab.Count;
                ids[merged] = c;
                vocab.Add(merged);
            }
            merges.Add((vocab[a], vocab[b]));

            round++;
            deltas.Clear();
            foreach (int w in pairWords[key])
            {
                if (stamp[w] == round) continue;
                stamp[w] = round;
                var old = words[w];
                if (!MergeInto(old, a, b, c, rebuilt)) continue;   // stale: the pair left this word earlier
                for (int i = 0; i + 1 < old.Length; i++) Add(deltas, Key(old[i], old[i + 1]), -freq[w]);
                for (int i = 0; i + 1 < rebuilt.Count; i++)
                {
                    long k = Key(rebuilt[i], rebuilt[i + 1]);
                    Add(deltas, k, freq[w]);
                    // Pairs without the new token were already in this word and already list it.
                    if (rebuilt[i] == c || rebuilt[i + 1] == c)
                    {
                        if (!pairWords.TryGetValue(k, out var list)) pairWords[k] = list = [];
                        if (list.Count == 0 || list[^1] != w) list.Add(w);
                    }
                }
                words[w] = rebuilt.ToArray();
            }
            pairWords.Remove(key);
            foreach (var (k, d) in deltas)
            {
                if (d == 0) continue;
                long n = pairCount.GetValueOrDefault(k) + d;
                if (n <= 0) pairCount.Remove(k);
                else pairCount[k] = n;
                if (d > 0) heap.Enqueue(k, new Entry(n, (int)(k >> 32), (int)k));
            }
        }
        return new BpeModel(vocab, merges, specials);
    }

    private static void Add(Dictionary<long, long> d, long key, long value) => d[key] = d.GetValueOrDefault(key) + value;

    // Left-to-right, non-overlapping replacement of (a, b) by c, as BPE applies a merge; false when absent.
    private static bool MergeInto(int[] word, int a, int b, int c, List<int> result)
    {
        result.Clear();
        bool any = false;
        for (int i = 0; i < word.Length; i++)
        {
            if (i + 1 < word.Length && word[i] == a && word[i + 1] == b)
            {
                result.Add(c);
                i++;
                any = true;
            }
            else result.Add(word[i]);
        }
        return any;
    }
}
