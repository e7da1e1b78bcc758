namespace Peft.Training.Models.T5;

/// <summary>Typed view of a T5 / mT5 <c>config.json</c> (missing keys take transformers' T5Config / MT5Config defaults).</summary>
public sealed record T5Config
{
    public required int VocabSize { get; init; }
    public required int DModel { get; init; }
    /// <summary>Per-head size; heads × d_kv may differ from d_model (q/k/v project d_model → heads·d_kv).</summary>
    public required int DKv { get; init; }
    public required int DFf { get; init; }
    public required int NumLayers { get; init; }
    public required int NumDecoderLayers { get; init; }
    public required int NumHeads { get; init; }
    public int NumBuckets { get; init; } = 32;
    public int MaxDistance { get; init; } = 128;
    public double LayerNormEps { get; init; } = 1e-6;
    /// <summary>Gated feed-forward (<c>wi_0</c>, <c>wi_1</c>) instead of a single <c>wi</c>.</summary>
    public bool IsGatedAct { get; init; }
    public string DenseActFn { get; init; } = "relu";
    public bool TieWordEmbeddings { get; init; } = true;
    public double InitializerFactor { get; init; } = 1.0;
    /// <summary><c>dropout_rate</c>: after the embeddings, on attention probabilities, inside the feed-forward, on every
    /// residual branch and after each stack's final norm (transformers' default 0.1).</summary>
    public double DropoutRate { get; init; } = 0.1;

    public int InnerDim => NumHeads * DKv;

    public static T5Config From(ModelConfig c)
    {
        bool mt5 = c.ModelType == "mt5";
        // transformers derives the activation from feed_forward_proj ("relu", "gelu", "gated-gelu", "gated-silu"...),
        // but dense_act_fn / is_gated_act saved in config.json are applied afterwards and win.
        string proj = c.GetString("feed_forward_proj") ?? (mt5 ? "gated-gelu" : "relu");
        var parts = proj.Split('-');
        if (parts.Length > 2 || (parts.Length == 2 && parts[0] != "gated"))
            throw c.Error("feed_forward_proj", $"'{proj}' is not valid (expected ACT or gated-ACT, e.g. relu, gated-gelu)");
        bool gated = parts[0] == "gated" && parts.Length == 2;
        string act = proj == "gated-gelu" ? "gelu_new" : parts[^1];
        int heads = Positive(c, "num_heads", mt5 ? 6 : 8);
        int layers = Positive(c, "num_layers", mt5 ? 8 : 6);
        var cfg = new T5Config
        {
            VocabSize = Positive(c, "vocab_size", mt5 ? 250112 : 32128),
            DModel = Positive(c, "d_model", 512),
            DKv = Positive(c, "d_kv", 64),
            DFf = Positive(c, "d_ff", mt5 ? 1024 : 2048),
            NumLayers = layers,
            NumDecoderLayers = c.TryGetInt("num_decoder_layers") ?? layers,
            NumHeads = heads,
            NumBuckets = Positive(c, "relative_attention_num_buckets", 32),
            MaxDistance = Positive(c, "relative_attention_max_distance", 128),
            LayerNormEps = c.GetDouble("layer_norm_epsilon", 1e-6),
            IsGatedAct = c.GetBool("is_gated_act", gated),
            DenseActFn = c.GetString("dense_act_fn") ?? act,
            TieWordEmbeddings = c.GetBool("tie_word_embeddings", !mt5),
            InitializerFactor = c.GetDouble("initializer_factor", 1.0),
            DropoutRate = c.GetRate(0.1, "dropout_rate"),
        };
        if (cfg.NumDecoderLayers <= 0) throw c.Error("num_decoder_layers", $"must be positive, got {cfg.NumDecoderLayers}");
        // Fewer than 4 buckets leaves no exact-distance bucket in the encoder (log of a division by zero).
        if (cfg.NumBuckets < 4) throw c.Error("relative_attention_num_buckets", $"must be at least 4, got {cfg.NumBuckets}");
        try { Nn.Activations.Get(cfg.DenseActFn); }   // fail at load time, naming the key, on an unknown activation
        catch (ArgumentException e) { throw c.Error("dense_act_fn", e.Message); }
        return cfg;
    }

    private static int Positive(ModelConfig c, string key, int fallback)
    {
        int v = c.TryGetInt(key) ?? fallback;
        if (v <= 0) throw c.Error(key, $"must be positive, got {v}");
        return v;
    }
}
