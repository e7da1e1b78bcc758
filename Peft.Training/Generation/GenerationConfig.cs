using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Training.Models;

namespace Peft.Training.Generation;

/// <summary>
/// A model's <c>generation_config.json</c> (the subset used here). Every field is optional; unset fields fall back to
/// transformers' <c>GenerationConfig</c> defaults when a generation is resolved, and explicit
/// <see cref="GenerationOptions"/> override whatever is set here.
/// </summary>
public sealed record GenerationConfig
{
    public const string FileName = "generation_config.json";

    public IReadOnlyList<int>? EosTokenIds { get; init; }
    public int? PadTokenId { get; init; }
    public int? BosTokenId { get; init; }
    /// <summary>Encoder-decoder models: the first decoder token.</summary>
    public int? DecoderStartTokenId { get; init; }
    public int? MaxNewTokens { get; init; }
    public bool? DoSample { get; init; }
    public double? Temperature { get; init; }
    public int? TopK { get; init; }
    public double? TopP { get; init; }
    public int? NumBeams { get; init; }
    public double? LengthPenalty { get; init; }
    public bool? EarlyStopping { get; init; }

    /// <summary>Parses a generation_config.json file.</summary>
    public static GenerationConfig Load(string path)
    {
        if (!File.Exists(path)) throw new PeftUserException($"{path}: not found", UserErrorKind.NotFound);
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new ModelConfigException($"{path}: invalid JSON ({e.Message})"); }
        if (node is not JsonObject obj) throw new ModelConfigException($"{path}: expected a JSON object");
        return FromJson(new ModelConfig(obj, path));
    }

    /// <summary>
    /// The defaults for a model: <c>generation_config.json</c> in its folder (<see cref="PretrainedModel.NameOrPath"/>)
    /// when present, otherwise the generation keys of config.json (transformers' <c>from_model_config</c>). Token ids
    /// missing from generation_config.json are taken from config.json, which is what transformers copies there anyway.
    /// </summary>
    public static GenerationConfig ForModel(PretrainedModel model)
    {
        var fromModel = FromJson(model.Config);
        string dir = model.NameOrPath;
        string file = string.IsNullOrEmpty(dir) ? "" : Path.Combine(dir, FileName);
        if (file.Length == 0 || !File.Exists(file)) return fromModel;
        var loaded = Load(file);
        return loaded with
        {
            EosTokenIds = loaded.EosTokenIds ?? fromModel.EosTokenIds,
            PadTokenId = loaded.PadTokenId ?? fromModel.PadTokenId,
            BosTokenId = loaded.BosTokenId ?? fromModel.BosTokenId,
            DecoderStartTokenId = loaded.DecoderStartTokenId ?? fromModel.DecoderStartTokenId,
        };
    }

    private static GenerationConfig FromJson(ModelConfig json) => new()
    {
        EosTokenIds = json.Has("eos_token_id") ? json.GetIds("eos_token_id") : null,
        PadTokenId = json.TryGetInt("pad_token_id"),
        BosTokenId = json.TryGetInt("bos_token_id"),
        DecoderStartTokenId = json.TryGetInt("decoder_start_token_id"),
        MaxNewTokens = json.TryGetInt("max_new_tokens"),
        DoSample = TryGetBool(json, "do_sample"),
        Temperature = json.TryGetDouble("temperature"),
        TopK = json.TryGetInt("top_k"),
        TopP = json.TryGetDouble("top_p"),
        NumBeams = json.TryGetInt("num_beams"),
        LengthPenalty = json.TryGetDouble("length_penalty"),
        // transformers also allows early_stopping="never"; only the boolean forms are supported here.
        EarlyStopping = TryGetBool(json, "early_stopping"),
    };

    private static bool? TryGetBool(ModelConfig json, string key) => json.Has(key) ? json.GetBool(key, false) : null;
}
