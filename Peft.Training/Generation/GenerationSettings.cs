namespace Peft.Training.Generation;

/// <summary>Options merged with the model's generation config and transformers' defaults, validated.</summary>
internal sealed record GenerationSettings
{
    public required int MaxNewTokens { get; init; }
    public required bool DoSample { get; init; }
    public required double Temperature { get; init; }
    public required int TopK { get; init; }
    public required double TopP { get; init; }
    public required long? Seed { get; init; }
    public required int NumBeams { get; init; }
    public required double LengthPenalty { get; init; }
    public required bool EarlyStopping { get; init; }
    public required IReadOnlyList<long> EosTokenIds { get; init; }
    public required long? PadTokenId { get; init; }
    public required long? DecoderStartTokenId { get; init; }
    public required IReadOnlyList<string>? AdapterNames { get; init; }
    public required bool OutputScores { get; init; }
    public required Action<GenerationStep>? OnStep { get; init; }

    public static GenerationSettings Resolve(GenerationOptions o, GenerationConfig c, long batch)
    {
        var eos = (o.EosTokenIds ?? c.EosTokenIds ?? []).Select(x => (long)x).ToArray();
        var s = new GenerationSettings
        {
            // transformers' default is max_length=20 counting the prompt; a new-token budget is the more useful default.
            MaxNewTokens = o.MaxNewTokens ?? c.MaxNewTokens ?? 20,
            DoSample = o.DoSample ?? c.DoSample ?? false,
            Temperature = o.Temperature ?? c.Temperature ?? 1.0,
            TopK = o.TopK ?? c.TopK ?? 50,
            TopP = o.TopP ?? c.TopP ?? 1.0,
            Seed = o.Seed,
            NumBeams = o.NumBeams ?? c.NumBeams ?? 1,
            LengthPenalty = o.LengthPenalty ?? c.LengthPenalty ?? 1.0,
            EarlyStopping = o.EarlyStopping ?? c.EarlyStopping ?? false,
            EosTokenIds = eos,
            // transformers falls back to the first eos id so that finished rows can be padded.
            PadTokenId = (long?)(o.PadTokenId ?? c.PadTokenId) ?? (eos.Length > 0 ? eos[0] : null),
            // transformers falls back to bos when no decoder start token is configured.
            DecoderStartTokenId = o.DecoderStartTokenId ?? c.DecoderStartTokenId ?? c.BosTokenId,
            AdapterNames = o.AdapterNames,
            OutputScores = o.OutputScores,
            OnStep = o.OnStep,
        };
        s.Validate(batch);
        return s;
    }

    /// <summary>Option values come from users and generation_config.json: bad ones are user errors naming the field.</summary>
    private void Validate(long batch)
    {
        GenerationRules.MaxNewTokens(MaxNewTokens, "max_new_tokens");
        GenerationRules.NumBeams(NumBeams, "num_beams");
        if (NumBeams > 1 && DoSample) throw new PeftUserException("beam sampling (num_beams > 1 with do_sample) is not supported");
        if (NumBeams > 1 && OnStep is not null) throw new NotSupportedException("OnStep streaming cannot be used with beam search (as in transformers)");
        if (DoSample)
        {
            GenerationRules.Temperature(Temperature, "temperature");
            GenerationRules.TopK(TopK, "top_k");
            GenerationRules.TopP(TopP, "top_p");
        }
        if (AdapterNames is not null && AdapterNames.Count != batch)
            throw new PeftUserException($"adapter_names has {AdapterNames.Count} names but the batch has {batch} rows");
    }
}

/// <summary>
/// The value ranges of the decoding options, in one place: the library checks resolved settings with them and the CLI
/// checks its flags with them before loading a model. <c>label</c> is the name the caller's user wrote.
/// </summary>
public static class GenerationRules
{
    private static string Num(double v) => v.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public static void MaxNewTokens(int v, string label)
    {
        if (v <= 0) throw new PeftUserException($"{label} must be > 0, got {v}", UserErrorKind.BadRequest);
    }

    public static void NumBeams(int v, string label)
    {
        if (v < 1) throw new PeftUserException($"{label} must be >= 1, got {v}", UserErrorKind.BadRequest);
    }

    public static void Temperature(double v, string label)
    {
        if (!(v > 0 && double.IsFinite(v))) throw new PeftUserException($"{label} must be > 0, got {Num(v)}", UserErrorKind.BadRequest);
    }

    public static void TopK(int v, string label)
    {
        if (v < 0) throw new PeftUserException($"{label} must be >= 0, got {v}", UserErrorKind.BadRequest);
    }

    /// <summary>transformers' <c>TopPLogitsWarper</c> range, [0, 1].</summary>
    public static void TopP(double v, string label)
    {
        if (!(v >= 0 && v <= 1)) throw new PeftUserException($"{label} must be in [0, 1], got {Num(v)}", UserErrorKind.BadRequest);
    }

    public static void PadTokenId(int v, string label)
    {
        if (v < 0) throw new PeftUserException($"{label} must be >= 0, got {v}", UserErrorKind.BadRequest);
    }
}
