using Peft.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Generation;

/// <summary>
/// transformers' <c>_beam_search</c> + <c>BeamSearchScorer</c> (4.40): beams are rows of an expanded batch; each step
/// adds log-softmax scores to the running beam scores, takes the top max(2, 1 + n_eos)·beams candidates per input row,
/// moves eos candidates into the finished hypotheses (score / generated_len^length_penalty) and keeps the best
/// non-eos ones as the next beams. Token bookkeeping is on the host: the model only needs the newest token. Encoder-
/// decoder models run the encoder once per input row; beams then extend the decoder start token.
/// </summary>
internal static class BeamSearch
{
    public static GenerationResult Run(ICausalLmRunner runner, Tensor ids, Tensor mask, GenerationSettings s, CancellationToken ct)
    {
        using var stepper = DecodeSteppers.Create(runner, ids, mask, s, s.NumBeams);
        return Run(stepper, (int)ids.shape[0], s, runner.Model.Device, ct);
    }

    private static GenerationResult Run(IDecodeStepper stepper, int batch, GenerationSettings s, Device device, CancellationToken ct)
    {
        int k = s.NumBeams, rows = batch * k;
        int promptLen = (int)stepper.Prompt.shape[1];
        int maxLength = promptLen + s.MaxNewTokens;
        var seqs = new long[rows][];
        using (var cpu = stepper.Prompt.cpu().contiguous())
        {
            var flat = cpu.data<long>().ToArray();
            for (int r = 0; r < rows; r++) seqs[r] = flat.AsSpan(r * promptLen, promptLen).ToArray();
        }
        // Only beam 0 starts "alive" so the first step does not pick the same token k times.
        var beamScores = new float[rows];
        for (int r = 0; r < rows; r++) beamScores[r] = r % k == 0 ? 0f : -1e9f;
        var hyps = Enumerable.Range(0, batch).Select(_ => new BeamHypotheses(k, s.LengthPenalty, s.EarlyStopping)).ToArray();
        var done = new bool[batch];
        var scores = s.OutputScores ? new List<Tensor>() : null;
        int candidates = Math.Max(2, 1 + s.EosTokenIds.Count) * k;
        Tensor? stepIds = null;

        for (int step = 0; step < s.MaxNewTokens; step++)
        {
            ct.ThrowIfCancellationRequested();
            using var scope = torch.NewDisposeScope();
            var logProbs = stepper.Next(stepIds).log_softmax(-1);
            long vocab = logProbs.shape[1];
            if (scores is not null) scores.Add(logProbs.clone().MoveToOuterDisposeScope());
            var total = logProbs + torch.tensor(beamScores, device: device).unsqueeze(1);
            var (topValues, topIndices) = total.view(batch, k * vocab).topk(candidates, 1, largest: true, sorted: true);
            var values = topValues.cpu().data<float>().ToArray();
            var flatIdx = topIndices.cpu().data<long>().ToArray();

            int curLen = promptLen + step + 1;   // length once this step's token is appended
            var nextScores = new float[rows];
            var nextTokens = new long[rows];
            var nextSources = new int[rows];
            for (int b = 0; b < batch; b++)
            {
                if (done[b])
                {
                    // Finished rows only carry padding; keep their beams pointing at themselves.
                    for (int j = 0; j < k; j++) (nextScores[b * k + j], nextTokens[b * k + j], nextSources[b * k + j]) = (0f, s.PadTokenId ?? 0, b * k);
                    continue;
                }
                int filled = 0;
                for (int rank = 0; rank < candidates && filled < k; rank++)
                {
                    int c = b * candidates + rank;
                    long token = flatIdx[c] % vocab;
                    int source = b * k + (int)(flatIdx[c] / vocab);
                    if (s.EosTokenIds.Contains(token))
                    {
                        // An eos outside the top-k candidates would not have been a beam: ignore it.
                        if (rank >= k) continue;
                        hyps[b].Add(seqs[source], values[c], curLen - promptLen);
                    }
                    else
                    {
                        int slot = b * k + filled++;
                        (nextScores[slot], nextTokens[slot], nextSources[slot]) = (values[c], token, source);
                    }
                }
                done[b] = hyps[b].IsDone(values[b * candidates], curLen - promptLen);
            }

            var reordered = new long[rows][];
            for (int r = 0; r < rows; r++) reordered[r] = [.. seqs[nextSources[r]], nextTokens[r]];
            seqs = reordered;
            beamScores = nextScores;
            if (done.All(d => d) || curLen >= maxLength) break;

            using (var sources = torch.tensor(nextSources.Select(x => (long)x).ToArray(), device: device))
                stepper.Reorder(sources);
            stepIds?.Dispose();
            stepIds = torch.tensor(nextTokens, device: device).view(rows, 1).MoveToOuterDisposeScope();
        }
        stepIds?.Dispose();
        return Finalize(hyps, done, seqs, beamScores, k, promptLen, maxLength, s, device, scores);
    }

    /// <summary>Adds the open beams of unfinished rows, then picks each row's best hypothesis and appends eos if it fits.</summary>
    private static GenerationResult Finalize(BeamHypotheses[] hyps, bool[] done, long[][] seqs, float[] beamScores, int k,
        int promptLen, int maxLength, GenerationSettings s, Device device, List<Tensor>? scores)
    {
        int batch = hyps.Length;
        for (int b = 0; b < batch; b++)
        {
            if (done[b]) continue;
            for (int j = 0; j < k; j++)
            {
                var seq = seqs[b * k + j];
                hyps[b].Add(seq, beamScores[b * k + j], seq.Length - promptLen);
            }
        }
        var best = hyps.Select(h => h.Best()).ToArray();
        int longest = best.Max(h => h.Tokens.Length);
        int width = Math.Min(longest + 1, maxLength);
        bool ragged = best.Any(h => h.Tokens.Length != longest);
        var decoded = new long[batch * width];
        var counts = new int[batch];
        for (int b = 0; b < batch; b++)
        {
            var span = decoded.AsSpan(b * width, width);
            if (ragged) span.Fill(s.PadTokenId ?? 0);
            var tokens = best[b].Tokens;
            tokens.CopyTo(span);
            counts[b] = tokens.Length - promptLen;
            // Hypotheses closed by eos are stored without it; transformers writes the first eos id back.
            if (tokens.Length < width)
            {
                span[tokens.Length] = s.EosTokenIds.Count > 0 ? s.EosTokenIds[0] : s.PadTokenId ?? 0;
                counts[b]++;
            }
        }
        return new GenerationResult
        {
            Sequences = torch.tensor(decoded, device: device).view(batch, width),
            PromptLength = promptLen,
            NewTokenCounts = counts,
            Scores = scores,
            SequenceScores = best.Select(h => h.Score).ToArray(),
        };
    }
}

/// <summary>The n best finished hypotheses of one input row (transformers' <c>BeamHypotheses</c>).</summary>
internal sealed class BeamHypotheses(int numBeams, double lengthPenalty, bool earlyStopping)
{
    private readonly List<(double Score, long[] Tokens)> _beams = [];
    private double _worst = 1e9;

    public void Add(long[] tokens, double sumLogProbs, int generatedLen)
    {
        double score = sumLogProbs / Math.Pow(generatedLen, lengthPenalty);
        if (_beams.Count >= numBeams && score <= _worst) return;
        _beams.Add((score, tokens));
        if (_beams.Count > numBeams)
        {
            // Drop the worst (lowest score, earliest on ties, like Python's sort of (score, index) pairs).
            var order = _beams.Select((h, i) => (h.Score, i)).OrderBy(x => x.Score).ThenBy(x => x.i).ToArray();
            _beams.RemoveAt(order[0].i);
            _worst = order[1].Score;
        }
        else
        {
            _worst = Math.Min(score, _worst);
        }
    }

    /// <summary>Whether no open beam can still beat the worst kept hypothesis (or, with early stopping, n are kept).</summary>
    public bool IsDone(double bestSumLogProbs, int generatedLen)
    {
        if (_beams.Count < numBeams) return false;
        if (earlyStopping) return true;
        return _worst >= bestSumLogProbs / Math.Pow(generatedLen, lengthPenalty);
    }

    /// <summary>Highest score; on ties the last added (Python's stable sort, then pop()).</summary>
    public (double Score, long[] Tokens) Best()
    {
        int bestIndex = 0;
        for (int i = 1; i < _beams.Count; i++)
            if (_beams[i].Score >= _beams[bestIndex].Score) bestIndex = i;
        return _beams[bestIndex];
    }
}
