using Peft.Core;

namespace Peft.Training.Serving;

/// <summary>
/// Per-request decoding settings (the OpenAI / TGI fields). Temperature 0 = greedy. Penalties follow OpenAI
/// (presence/frequency over the generated tokens) and transformers (repetition over prompt + generated).
/// </summary>
public sealed record SamplingParams
{
    public int MaxTokens { get; init; } = 16;
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    public int TopK { get; init; }
    /// <summary>Seeds this request's own generator; null = a random seed (reported back).</summary>
    public long? Seed { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>Number of top alternatives to return per token (0 = only the chosen token's log-probability; null = none).</summary>
    public int? Logprobs { get; init; }
    public double PresencePenalty { get; init; }
    public double FrequencyPenalty { get; init; }
    public double RepetitionPenalty { get; init; } = 1.0;
    /// <summary>Stop at the model's end-of-sequence token (false = run to MaxTokens).</summary>
    public bool StopAtEos { get; init; } = true;

    public bool Greedy => Temperature == 0;

    /// <summary>Throws a <see cref="PeftUserException"/> (HTTP 422) naming the first bad field.</summary>
    public void Validate(int maxTokensLimit)
    {
        if (MaxTokens < 1 || MaxTokens > maxTokensLimit) throw Bad("max_tokens", $"must be in [1, {maxTokensLimit}], got {MaxTokens}");
        if (!(Temperature >= 0) || Temperature > 100) throw Bad("temperature", $"must be in [0, 100], got {Temperature}");
        if (!(TopP > 0 && TopP <= 1)) throw Bad("top_p", $"must be in (0, 1], got {TopP}");
        if (TopK < 0) throw Bad("top_k", $"must be ≥ 0, got {TopK}");
        if (Stop.Count > 8 || Stop.Any(string.IsNullOrEmpty)) throw Bad("stop", "at most 8 non-empty strings");
        if (Logprobs is < 0 or > 20) throw Bad("logprobs", $"must be in [0, 20], got {Logprobs}");
        if (!(PresencePenalty >= -2 && PresencePenalty <= 2)) throw Bad("presence_penalty", $"must be in [-2, 2], got {PresencePenalty}");
        if (!(FrequencyPenalty >= -2 && FrequencyPenalty <= 2)) throw Bad("frequency_penalty", $"must be in [-2, 2], got {FrequencyPenalty}");
        if (!(RepetitionPenalty > 0) || RepetitionPenalty > 10) throw Bad("repetition_penalty", $"must be in (0, 10], got {RepetitionPenalty}");
    }

    private static PeftUserException Bad(string field, string what) => new($"'{field}' {what}", UserErrorKind.Invalid);
}
