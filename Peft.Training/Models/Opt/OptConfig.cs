namespace Peft.Training.Models.Opt;

/// <summary>Typed view of an OPT <c>config.json</c>.</summary>
public sealed record OptConfig
{
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int FfnDim { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int MaxPositions { get; init; }
    public required int WordEmbedProjDim { get; init; }
    public bool DoLayerNormBefore { get; init; } = true;
    public bool RemoveFinalLayerNorm { get; init; }
    public bool EnableBias { get; init; } = true;
    public bool LayerNormAffine { get; init; } = true;
    public string Activation { get; init; } = "relu";
    public bool TieWordEmbeddings { get; init; } = true;
    /// <summary><c>dropout</c> on each residual branch, <c>attention_dropout</c> on the attention probabilities,
    /// <c>layerdrop</c> the chance to skip a whole layer in training (transformers' defaults 0.1, 0, 0).</summary>
    public double Dropout { get; init; } = 0.1;
    public double AttentionDropout { get; init; }
    public double LayerDrop { get; init; }

    public static OptConfig From(ModelConfig c)
    {
        int hidden = c.GetInt("hidden_size");
        int heads = c.GetInt("num_attention_heads");
        if (hidden <= 0 || heads <= 0 || hidden % heads != 0)
            throw c.Error("hidden_size", $"must be a positive multiple of num_attention_heads ({heads}), got {hidden}");
        return new OptConfig
        {
            VocabSize = c.GetInt("vocab_size"),
            HiddenSize = hidden,
            FfnDim = c.GetInt("ffn_dim"),
            NumLayers = c.GetInt("num_hidden_layers"),
            NumHeads = heads,
            MaxPositions = c.GetInt("max_position_embeddings"),
            WordEmbedProjDim = c.TryGetInt("word_embed_proj_dim") ?? hidden,
            DoLayerNormBefore = c.GetBool("do_layer_norm_before", true),
            RemoveFinalLayerNorm = c.GetBool("_remove_final_layer_norm", false),
            EnableBias = c.GetBool("enable_bias", true),
            LayerNormAffine = c.GetBool("layer_norm_elementwise_affine", true),
            Activation = c.GetString("activation_function") ?? "relu",
            TieWordEmbeddings = c.GetBool("tie_word_embeddings", true),
            Dropout = c.GetRate(0.1, "dropout"),
            AttentionDropout = c.GetRate(0.0, "attention_dropout"),
            LayerDrop = c.GetRate(0.0, "layerdrop"),
        };
    }
}
