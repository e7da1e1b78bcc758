namespace Peft.Training.Models.Gpt2;

/// <summary>Typed view of a GPT-2 <c>config.json</c>.</summary>
public sealed record Gpt2Config
{
    public required int VocabSize { get; init; }
    public required int MaxPositions { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int InnerSize { get; init; }
    public double LayerNormEps { get; init; } = 1e-5;
    public string Activation { get; init; } = "gelu_new";
    public bool ScaleAttnWeights { get; init; } = true;
    public bool ScaleAttnByInverseLayerIdx { get; init; }
    /// <summary>Dropout after the embeddings (<c>embd_pdrop</c>), on attention probabilities (<c>attn_pdrop</c>) and on
    /// each residual branch (<c>resid_pdrop</c>); transformers' defaults are 0.1.</summary>
    public double EmbdPdrop { get; init; } = 0.1;
    public double AttnPdrop { get; init; } = 0.1;
    public double ResidPdrop { get; init; } = 0.1;

    public static Gpt2Config From(ModelConfig c)
    {
        int hidden = c.GetInt("n_embd", "hidden_size");
        int heads = c.GetInt("n_head", "num_attention_heads");
        if (hidden <= 0 || heads <= 0 || hidden % heads != 0)
            throw c.Error("n_embd", $"must be a positive multiple of n_head ({heads}), got {hidden}");
        int vocab = c.GetInt("vocab_size");
        if (vocab <= 0) throw c.Error("vocab_size", $"must be positive, got {vocab}");
        int layers = c.GetInt("n_layer", "num_hidden_layers");
        if (layers <= 0) throw c.Error("n_layer", $"must be positive, got {layers}");
        return new Gpt2Config
        {
            VocabSize = vocab,
            MaxPositions = c.GetInt("n_positions", "max_position_embeddings"),
            HiddenSize = hidden,
            NumLayers = layers,
            NumHeads = heads,
            InnerSize = c.TryGetInt("n_inner") ?? 4 * hidden,
            LayerNormEps = c.GetDouble("layer_norm_epsilon", 1e-5),
            Activation = c.GetString("activation_function") ?? "gelu_new",
            ScaleAttnWeights = c.GetBool("scale_attn_weights", true),
            ScaleAttnByInverseLayerIdx = c.GetBool("scale_attn_by_inverse_layer_idx", false),
            EmbdPdrop = c.GetRate(0.1, "embd_pdrop"),
            AttnPdrop = c.GetRate(0.1, "attn_pdrop"),
            ResidPdrop = c.GetRate(0.1, "resid_pdrop"),
        };
    }
}
