using static TorchSharp.torch;

namespace Peft.Training.Generation;

/// <summary>
/// Arguments of <see cref="TextGenerator.Generate(ICausalLmRunner, Tensor, Tensor?, GenerationOptions, CancellationToken)"/>
/// (transformers' <c>generate()</c> kwargs). Null = the model's <see cref="GenerationConfig"/>, then transformers' default.
/// </summary>
public sealed record GenerationOptions
{
    /// <summary>Tokens to generate per row (default 20).</summary>
    public int? MaxNewTokens { get; init; }
    /// <summary>Sample instead of greedy/beam search (default false).</summary>
    public bool? DoSample { get; init; }
    /// <summary>Sampling temperature (default 1.0, must be &gt; 0).</summary>
    public double? Temperature { get; init; }
    /// <summary>Keep the k most likely tokens when sampling; 0 disables (transformers' default is 50).</summary>
    public int? TopK { get; init; }
    /// <summary>Nucleus sampling: keep the smallest set whose probability reaches p (default 1.0 = off).</summary>
    public double? TopP { get; init; }
    /// <summary>Seed of the sampling generator; null = torch's global generator (not reproducible).</summary>
    public long? Seed { get; init; }
    /// <summary>Beam width (default 1 = greedy or sampling).</summary>
    public int? NumBeams { get; init; }
    /// <summary>Beam score = log-prob sum / generated_length^LengthPenalty (default 1.0).</summary>
    public double? LengthPenalty { get; init; }
    /// <summary>Beam search stops a row as soon as NumBeams hypotheses are finished (default false: heuristic stop).</summary>
    public bool? EarlyStopping { get; init; }
    /// <summary>Tokens that finish a row; null = the model's eos_token_id; empty = never stop early.</summary>
    public IReadOnlyList<int>? EosTokenIds { get; init; }
    /// <summary>Written after a row finished; null = the model's pad_token_id, else the first eos id.</summary>
    public int? PadTokenId { get; init; }
    /// <summary>Encoder-decoder models: the first decoder token; null = the model's decoder_start_token_id, else bos.</summary>
    public int? DecoderStartTokenId { get; init; }
    /// <summary>One adapter per input row for a mixed-batch PeftModel (<c>"__base__"</c> = no adapter).</summary>
    public IReadOnlyList<string>? AdapterNames { get; init; }
    /// <summary>Return the per-step scores in <see cref="GenerationResult.Scores"/>.</summary>
    public bool OutputScores { get; init; }
    /// <summary>Called synchronously after every step with the new tokens (streaming). Not available with beams.</summary>
    public Action<GenerationStep>? OnStep { get; init; }
    /// <summary>Defaults to use instead of loading the model's generation_config.json.</summary>
    public GenerationConfig? Defaults { get; init; }
}

/// <summary>One decoding step, as reported to <see cref="GenerationOptions.OnStep"/>.</summary>
/// <param name="Step">0-based index of the new token.</param>
/// <param name="Tokens">The token appended to each row (the pad id for rows that had already finished).</param>
/// <param name="Finished">Whether each row is finished after this step (it produced an eos token now or earlier).</param>
public sealed record GenerationStep(int Step, IReadOnlyList<long> Tokens, IReadOnlyList<bool> Finished);

/// <summary>Output of a generation. Owns its tensors.</summary>
public sealed class GenerationResult : IDisposable
{
    /// <summary>
    /// int64 [batch, prompt + new]: the prompt (padding included) followed by the generated tokens. Encoder-decoder
    /// models: the decoder sequence, i.e. decoder_start_token_id then the generated tokens (as transformers returns).
    /// </summary>
    public required Tensor Sequences { get; init; }
    /// <summary>Prompt length (columns of the input); 1 (the decoder start token) for encoder-decoder models.</summary>
    public required long PromptLength { get; init; }
    /// <summary>Tokens generated per row, eos included, excluding the padding written after a row finished.</summary>
    public required IReadOnlyList<int> NewTokenCounts { get; init; }
    /// <summary>
    /// With <see cref="GenerationOptions.OutputScores"/>: one float32 tensor per step. Greedy/sampling: [batch, vocab]
    /// processed scores (the raw last-position logits when no warper is active). Beam search: [batch·beams, vocab]
    /// log-softmax scores of every beam (as transformers).
    /// </summary>
    public IReadOnlyList<Tensor>? Scores { get; init; }
    /// <summary>Beam search: the length-penalised score of each returned sequence (transformers' <c>sequences_scores</c>).</summary>
    public IReadOnlyList<double>? SequenceScores { get; init; }

    /// <summary>The scores stacked to [rows, steps, vocab] (caller disposes).</summary>
    public Tensor StackedScores() =>
        Scores is { Count: > 0 } s ? TorchSharp.torch.stack(s, 1) : throw new InvalidOperationException("no scores were recorded (set OutputScores)");

    /// <summary>The generated tokens of one row (without prompt and trailing padding).</summary>
    public long[] NewTokens(int row)
    {
        using var full = Sequences.select(0, row);
        using var r = full.slice(0, PromptLength, PromptLength + NewTokenCounts[row], 1).contiguous();
        return r.data<long>().ToArray();
    }

    public void Dispose()
    {
        Sequences.Dispose();
        if (Scores is not null) foreach (var s in Scores) s.Dispose();
    }
}
