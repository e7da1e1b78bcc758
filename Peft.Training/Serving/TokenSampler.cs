namespace Peft.Training.Serving;

/// <summary>One chosen token with its log-probability and, when asked, the most likely alternatives.</summary>
public sealed record SampledToken(int TokenId, double Logprob, IReadOnlyList<(int TokenId, double Logprob)>? Top);

/// <summary>
/// Picks one sequence's next token from its row of logits, on the CPU with the request's own seeded generator, so a
/// request draws the same tokens whatever else shares its batch. Log-probabilities are those of the model's raw
/// distribution (before penalties and warpers), as OpenAI reports them.
/// </summary>
public sealed class TokenSampler(SamplingParams p, long seed)
{
    private readonly Random _random = new(unchecked((int)(seed ^ (seed >> 32))));
    private readonly Dictionary<int, int> _generatedCounts = new();
    private readonly HashSet<int> _seen = new();

    public SamplingParams Params { get; } = p;

    public void ObservePrompt(IEnumerable<int> prompt)
    {
        foreach (var t in prompt) _seen.Add(t);
    }

    public SampledToken Next(ReadOnlySpan<float> logits)
    {
        var scores = logits.ToArray();
        double[]? logprobs = Params.Logprobs is not null ? LogSoftmax(scores) : null;
        ApplyPenalties(scores);
        int chosen = Params.Greedy ? ArgMax(scores) : Sample(scores);
        Remember(chosen);
        if (logprobs is null) return new SampledToken(chosen, double.NaN, null);
        IReadOnlyList<(int, double)>? top = Params.Logprobs > 0
            ? Enumerable.Range(0, logprobs.Length).OrderByDescending(i => logprobs[i]).ThenBy(i => i).Take(Params.Logprobs.Value)
                .Select(i => (i, logprobs[i])).ToList()
            : null;
        return new SampledToken(chosen, logprobs[chosen], top);
    }

    private void Remember(int token)
    {
        _generatedCounts[token] = _generatedCounts.GetValueOrDefault(token) + 1;
        _seen.Add(token);
    }

    private void ApplyPenalties(float[] s)
    {
        if (Params.RepetitionPenalty != 1.0)
            foreach (var t in _seen)
                if ((uint)t < (uint)s.Length) s[t] = s[t] < 0 ? (float)(s[t] * Params.RepetitionPenalty) : (float)(s[t] / Params.RepetitionPenalty);
        if (Params.PresencePenalty != 0 || Params.FrequencyPenalty != 0)
            foreach (var (t, c) in _generatedCounts)
                if ((uint)t < (uint)s.Length) s[t] -= (float)(Params.FrequencyPenalty * c + Params.PresencePenalty);
    }

    /// <summary>Lowest index among the maxima (torch.argmax's tie rule on CPU).</summary>
    private static int ArgMax(float[] s)
    {
        int best = 0;
        for (int i = 1; i < s.Length; i++) if (s[i] > s[best]) best = i;
        return best;
    }

    /// <summary>Temperature, top-k, top-p (transformers' order), then one draw from the kept mass.</summary>
    private int Sample(float[] s)
    {
        double t = Params.Temperature;
        int[] order = Enumerable.Range(0, s.Length).ToArray();
        int keep = s.Length;
        if (Params.TopK > 0 || Params.TopP < 1.0)
        {
            // Descending by score; the order depends only on this row's scores, never on the batch.
            var keys = new float[s.Length];
            for (int i = 0; i < s.Length; i++) keys[i] = -s[i];
            Array.Sort(keys, order);
            if (Params.TopK > 0) keep = Math.Min(Params.TopK, s.Length);
        }
        double max = double.NegativeInfinity;
        for (int k = 0; k < keep; k++) max = Math.Max(max, s[order[k]] / t);
        var probs = new double[keep];
        double sum = 0;
        for (int k = 0; k < keep; k++) { probs[k] = Math.Exp(s[order[k]] / t - max); sum += probs[k]; }
        if (Params.TopP < 1.0)
        {
            double cumulative = 0;
            int n = 0;
            while (n < keep) { cumulative += probs[n] / sum; n++; if (cumulative >= Params.TopP) break; }
            keep = n;
            sum = 0;
            for (int k = 0; k < keep; k++) sum += probs[k];
        }
        double u = _random.NextDouble() * sum;
        for (int k = 0; k < keep; k++)
        {
            u -= probs[k];
            if (u <= 0) return order[k];
        }
        return order[keep - 1];
    }

    private static double[] LogSoftmax(float[] s)
    {
        double max = s.Max();
        double sum = 0;
        foreach (var v in s) sum += Math.Exp(v - max);
        double log = Math.Log(sum) + max;
        var r = new double[s.Length];
        for (int i = 0; i < s.Length; i++) r[i] = s[i] - log;
        return r;
    }
}
