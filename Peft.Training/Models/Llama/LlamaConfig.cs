namespace Peft.Training.Models.Llama;

/// <summary>Typed view of a Llama-family <c>config.json</c> (<c>llama</c>, <c>mistral</c>, <c>qwen2</c>).</summary>
public sealed record LlamaConfig
{
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    public bool QkvBias { get; init; }
    public bool OutputBias { get; init; }
    public bool MlpBias { get; init; }
    public string HiddenAct { get; init; } = "silu";
    public int? SlidingWindow { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    /// <summary><c>attention_dropout</c>: dropout on the attention probabilities (the only dropout in Llama/Mistral/Qwen2).</summary>
    public double AttentionDropout { get; init; }

    public static LlamaConfig From(ModelConfig c)
    {
        string type = c.ModelType;
        int hidden = c.GetInt("hidden_size");
        int heads = c.GetInt("num_attention_heads");
        int kvHeads = c.TryGetInt("num_key_value_heads") ?? heads;
        if (hidden <= 0) throw c.Error("hidden_size", "must be positive");
        if (heads <= 0) throw c.Error("num_attention_heads", "must be positive");
        if (kvHeads <= 0 || heads % kvHeads != 0)
            throw c.Error("num_key_value_heads", $"must divide num_attention_heads ({heads}), got {kvHeads}");
        int headDim = c.TryGetInt("head_dim") ?? hidden / heads;
        if (c.TryGetInt("head_dim") is null && hidden % heads != 0)
            throw c.Error("hidden_size", $"must be divisible by num_attention_heads ({heads})");
        bool attentionBias = c.GetBool("attention_bias", false);
        bool sliding = type == "mistral" || c.GetBool("use_sliding_window", false);
        return new LlamaConfig
        {
            VocabSize = Positive(c, "vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = Positive(c, "intermediate_size"),
            NumLayers = Positive(c, "num_hidden_layers"),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            RmsNormEps = c.GetDouble("rms_norm_eps", 1e-6),
            RopeTheta = c.GetDouble("rope_theta", 10000.0),
            RopeScaling = RopeScaling.From(c),
            TieWordEmbeddings = c.GetBool("tie_word_embeddings", false),
            // Qwen2 always has q/k/v biases; Llama has them (and o_proj's) only with attention_bias.
            QkvBias = type == "qwen2" || attentionBias,
            OutputBias = attentionBias,
            MlpBias = c.GetBool("mlp_bias", false),
            HiddenAct = c.GetString("hidden_act") ?? "silu",
            SlidingWindow = sliding ? c.TryGetInt("sliding_window") : null,
            MaxPositionEmbeddings = c.TryGetInt("max_position_embeddings") ?? 2048,
            AttentionDropout = c.GetRate(0.0, "attention_dropout"),
        };
    }

    private static int Positive(ModelConfig c, string key)
    {
        int v = c.GetInt(key);
        if (v <= 0) throw c.Error(key, $"must be positive, got {v}");
        return v;
    }
}

/// <summary><c>rope_scaling</c>: <c>linear</c> (positions divided by factor) or <c>llama3</c> (frequency bands).</summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositions)
{
    public static RopeScaling? From(ModelConfig c)
    {
        var o = c.GetObject("rope_scaling");
        if (o is null) return null;
        string? type = (o["rope_type"] ?? o["type"])?.GetValue<string>();
        if (type is null or "default") return null;
        double factor = o["factor"]?.GetValue<double>() ?? throw c.Error("rope_scaling.factor", "is missing");
        return type switch
        {
            "linear" => new RopeScaling(type, factor, 0, 0, 0),
            "llama3" => new RopeScaling(type, factor,
                o["low_freq_factor"]?.GetValue<double>() ?? throw c.Error("rope_scaling.low_freq_factor", "is missing"),
                o["high_freq_factor"]?.GetValue<double>() ?? throw c.Error("rope_scaling.high_freq_factor", "is missing"),
                o["original_max_position_embeddings"]?.GetValue<int>() ?? throw c.Error("rope_scaling.original_max_position_embeddings", "is missing")),
            _ => throw c.Error("rope_scaling.rope_type", $"'{type}' is not supported (linear, llama3)"),
        };
    }
}
