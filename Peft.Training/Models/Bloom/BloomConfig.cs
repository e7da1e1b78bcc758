namespace Peft.Training.Models.Bloom;

/// <summary>Typed view of a BLOOM <c>config.json</c>.</summary>
public sealed record BloomConfig
{
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public double LayerNormEps { get; init; } = 1e-5;
    public bool ResidualPostLayerNorm { get; init; }
    /// <summary><c>hidden_dropout</c> on each residual branch, <c>attention_dropout</c> on the attention probabilities.</summary>
    public double HiddenDropout { get; init; }
    public double AttentionDropout { get; init; }

    public static BloomConfig From(ModelConfig c)
    {
        int hidden = c.GetInt("hidden_size", "n_embed");
        int heads = c.GetInt("n_head", "num_attention_heads");
        if (hidden <= 0 || heads <= 0 || hidden % heads != 0)
            throw c.Error("hidden_size", $"must be a positive multiple of n_head ({heads}), got {hidden}");
        return new BloomConfig
        {
            VocabSize = c.GetInt("vocab_size"),
            HiddenSize = hidden,
            NumLayers = c.GetInt("n_layer", "num_hidden_layers"),
            NumHeads = heads,
            LayerNormEps = c.GetDouble("layer_norm_epsilon", 1e-5),
            ResidualPostLayerNorm = c.GetBool("apply_residual_connection_post_layernorm", false),
            HiddenDropout = c.GetRate(0.0, "hidden_dropout"),
            AttentionDropout = c.GetRate(0.0, "attention_dropout"),
        };
    }

    /// <summary>ALiBi head slopes: a geometric sequence per power of two, interleaved extras for other head counts.</summary>
    public static float[] AlibiSlopes(int heads)
    {
        int closest = 1 << (int)Math.Floor(Math.Log2(heads));
        double baseSlope = Math.Pow(2, -Math.Pow(2, -(Math.Log2(closest) - 3)));
        var slopes = Enumerable.Range(1, closest).Select(p => (float)Math.Pow(baseSlope, p)).ToList();
        if (closest != heads)
        {
            double extraBase = Math.Pow(2, -Math.Pow(2, -(Math.Log2(2 * closest) - 3)));
            int remaining = Math.Min(closest, heads - closest);
            slopes.AddRange(Enumerable.Range(0, remaining).Select(i => (float)Math.Pow(extraBase, 1 + 2 * i)));
        }
        return slopes.ToArray();
    }
}
