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

    private void Validate(long batch)
    {
        if (MaxNewTokens <= 0) throw new ArgumentException($"MaxNewTokens must be > 0, got {MaxNewTokens}");
        if (NumBeams < 1) throw new ArgumentException($"NumBeams must be >= 1, got {NumBeams}");
        if (NumBeams > 1 && DoSample) throw new PeftUserException("beam sampling (NumBeams > 1 with DoSample) is not supported");
        if (NumBeams > 1 && OnStep is not null) throw new PeftUserException("OnStep streaming cannot be used with beam search (as in transformers)");
        if (DoSample)
        {
            if (!(Temperature > 0)) throw new ArgumentException($"Temperature must be > 0, got {Temperature}");
            if (TopK < 0) throw new ArgumentException($"TopK must be >= 0, got {TopK}");
            if (!(TopP >= 0 && TopP <= 1)) throw new ArgumentException($"TopP must be in [0, 1], got {TopP}");
        }
        if (AdapterNames is not null && AdapterNames.Count != batch)
            throw new ArgumentException($"AdapterNames has {AdapterNames.Count} names but the batch has {batch} rows");
    }
}
