namespace Peft.Training.Models.Bert;

/// <summary>Typed view of a BERT-family <c>config.json</c> (<c>bert</c>, and the RoBERTa variants).</summary>
public sealed record BertConfig
{
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int IntermediateSize { get; init; }
    public required int MaxPositions { get; init; }
    public int TypeVocabSize { get; init; } = 2;
    public string HiddenAct { get; init; } = "gelu";
    public double LayerNormEps { get; init; } = 1e-12;
    public double HiddenDropout { get; init; } = 0.1;
    public double AttentionDropout { get; init; } = 0.1;
    public double ClassifierDropout { get; init; } = 0.1;
    public int NumLabels { get; init; } = 2;
    public int PadTokenId { get; init; }
    /// <summary>RoBERTa: positions count non-pad tokens from <c>pad_token_id + 1</c>; the base prefix is <c>roberta</c>.</summary>
    public bool IsRoberta { get; init; }

    /// <summary>Attribute name of the encoder inside models with a head (<c>bert.*</c> / <c>roberta.*</c>).</summary>
    public string BasePrefix => IsRoberta ? "roberta" : "bert";

    /// <summary>model_type values built by this family; all but <c>bert</c> use RoBERTa's embeddings.</summary>
    public static readonly string[] ModelTypes = ["bert", "roberta", "xlm-roberta", "camembert"];

    public static BertConfig From(ModelConfig c)
    {
        int hidden = Positive(c, "hidden_size");
        int heads = Positive(c, "num_attention_heads");
        if (hidden % heads != 0) throw c.Error("hidden_size", $"must be a multiple of num_attention_heads ({heads}), got {hidden}");
        // Relative position variants change the attention scores; silently ignoring them would give wrong outputs.
        string positions = c.GetString("position_embedding_type") ?? "absolute";
        if (positions != "absolute") throw c.Error("position_embedding_type", $"'{positions}' is not supported (absolute only)");
        bool roberta = c.ModelType != "bert";
        double hiddenDropout = c.GetDouble("hidden_dropout_prob", 0.1);
        return new BertConfig
        {
            VocabSize = Positive(c, "vocab_size"),
            HiddenSize = hidden,
            NumLayers = Positive(c, "num_hidden_layers"),
            NumHeads = heads,
            IntermediateSize = Positive(c, "intermediate_size"),
            MaxPositions = Positive(c, "max_position_embeddings"),
            TypeVocabSize = c.TryGetInt("type_vocab_size") ?? 2,
            HiddenAct = c.GetString("hidden_act") ?? "gelu",
            LayerNormEps = c.GetDouble("layer_norm_eps", 1e-12),
            HiddenDropout = hiddenDropout,
            AttentionDropout = c.GetDouble("attention_probs_dropout_prob", 0.1),
            ClassifierDropout = c.TryGetDouble("classifier_dropout") ?? hiddenDropout,
            NumLabels = TaskHeads.NumLabels(c),
            PadTokenId = TaskHeads.PadTokenId(c) ?? (roberta ? 1 : 0),
            IsRoberta = roberta,
        };
    }

    private static int Positive(ModelConfig c, string key)
    {
        int v = c.GetInt(key);
        if (v <= 0) throw c.Error(key, $"must be positive, got {v}");
        return v;
    }
}
