using System.Text.Json;

namespace Peft.Training.Tokenization;

/// <summary>
/// What transformers reads from tokenizer_config.json and special_tokens_map.json (and config.json's model_type
/// when no tokenizer class is named), reduced to what this port uses.
/// </summary>
internal sealed class TokenizerSettings
{
    /// <summary>Special-token role ("bos_token", ...) to token text; roles set to null are absent.</summary>
    public Dictionary<string, string> SpecialTokens { get; } = new();
    public List<string> AdditionalSpecialTokens { get; } = new();
    /// <summary>Ids from "added_tokens_decoder" flagged special; transformers registers them as special.</summary>
    public List<int> ExtraSpecialIds { get; } = new();
    public PaddingSide PaddingSide { get; set; } = PaddingSide.Right;
    public bool? AddBosToken { get; set; }
    public bool? AddEosToken { get; set; }
    public string? TokenizerClass { get; set; }
    public string? ModelType { get; set; }
    public string? ChatTemplate { get; set; }
    public bool CleanUpTokenizationSpaces { get; set; }
    public int? ModelMaxLength { get; set; }

    public static readonly string[] TokenRoles =
        { "bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token" };

    /// <summary>
    /// Class defaults transformers applies when the config names no token (the gpt2 repo, for one, ships only
    /// model_max_length). Only used when the token really exists in the vocabulary.
    /// </summary>
    private static readonly (string Prefix, string Role, string Token)[] ClassDefaults =
    {
        ("gpt2", "bos_token", "<|endoftext|>"), ("gpt2", "eos_token", "<|endoftext|>"), ("gpt2", "unk_token", "<|endoftext|>"),
        ("llama", "bos_token", "<s>"), ("llama", "eos_token", "</s>"), ("llama", "unk_token", "<unk>"),
        ("mistral", "bos_token", "<s>"), ("mistral", "eos_token", "</s>"), ("mistral", "unk_token", "<unk>"),
        ("bert", "unk_token", "[UNK]"), ("bert", "sep_token", "[SEP]"), ("bert", "pad_token", "[PAD]"),
        ("bert", "cls_token", "[CLS]"), ("bert", "mask_token", "[MASK]"),
    };

    /// <summary>
    /// Llama/Gemma fast tokenizers rebuild the post-processor from add_bos_token/add_eos_token (defaults true/false);
    /// other classes keep whatever tokenizer.json says.
    /// </summary>
    public bool RebuildsPostProcessor =>
        TokenizerClass is { } c && (c.StartsWith("LlamaTokenizer", StringComparison.Ordinal)
            || c.StartsWith("CodeLlamaTokenizer", StringComparison.Ordinal)
            || c.StartsWith("GemmaTokenizer", StringComparison.Ordinal));

    public static TokenizerSettings Load(string? modelDir)
    {
        var s = new TokenizerSettings();
        if (modelDir is null) return s;

        if (ReadJson(Path.Combine(modelDir, "tokenizer_config.json")) is { } cfg)
        {
            using (cfg)
            {
                var root = cfg.RootElement;
                s.ReadTokens(root);
                if (Str(root, "padding_side") is { } side)
                    s.PaddingSide = side == "left" ? PaddingSide.Left : PaddingSide.Right;
                s.AddBosToken = Bool(root, "add_bos_token");
                s.AddEosToken = Bool(root, "add_eos_token");
                s.TokenizerClass = Str(root, "tokenizer_class");
                s.CleanUpTokenizationSpaces = Bool(root, "clean_up_tokenization_spaces") ?? false;
                s.ChatTemplate = ReadChatTemplate(root);
                if (root.TryGetProperty("model_max_length", out var mml) && mml.ValueKind == JsonValueKind.Number)
                {
                    // transformers writes int(1e30) for "no limit"; anything beyond int range means the same here.
                    double v = mml.GetDouble();
                    s.ModelMaxLength = v is > 0 and <= int.MaxValue ? (int)v : null;
                }
                if (root.TryGetProperty("added_tokens_decoder", out var atd) && atd.ValueKind == JsonValueKind.Object)
                    foreach (var p in atd.EnumerateObject())
                        if (int.TryParse(p.Name, out int id) && p.Value.ValueKind == JsonValueKind.Object && Bool(p.Value, "special") == true)
                            s.ExtraSpecialIds.Add(id);
            }
        }
        // special_tokens_map.json wins over tokenizer_config.json, as in from_pretrained.
        if (ReadJson(Path.Combine(modelDir, "special_tokens_map.json")) is { } map)
            using (map) s.ReadTokens(map.RootElement);

        if (s.ChatTemplate is null && File.Exists(Path.Combine(modelDir, "chat_template.jinja")))
            s.ChatTemplate = File.ReadAllText(Path.Combine(modelDir, "chat_template.jinja"));

        if (s.TokenizerClass is null && ReadJson(Path.Combine(modelDir, "config.json")) is { } modelCfg)
            using (modelCfg) s.ModelType = Str(modelCfg.RootElement, "model_type");
        return s;
    }

    /// <summary>Fills roles the config did not mention (roles set to null explicitly stay absent).</summary>
    public void ApplyClassDefaults(Func<string, bool> inVocab)
    {
        string key = (TokenizerClass ?? ModelType ?? "").ToLowerInvariant();
        if (key.Length == 0) return;
        foreach (var (prefix, role, token) in ClassDefaults)
            if (key.StartsWith(prefix, StringComparison.Ordinal) && !MentionedRoles.Contains(role) && inVocab(token))
                SpecialTokens[role] = token;
    }

    /// <summary>Roles named in any config file, including those set to null.</summary>
    public HashSet<string> MentionedRoles { get; } = new();

    private void ReadTokens(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) return;
        foreach (var role in TokenRoles)
        {
            if (!root.TryGetProperty(role, out var v)) continue;
            MentionedRoles.Add(role);
            if (TokenText(v) is { } t) SpecialTokens[role] = t;
            else SpecialTokens.Remove(role);
        }
        if (root.TryGetProperty("additional_special_tokens", out var extra) && extra.ValueKind == JsonValueKind.Array)
        {
            AdditionalSpecialTokens.Clear();
            foreach (var e in extra.EnumerateArray())
                if (TokenText(e) is { } t) AdditionalSpecialTokens.Add(t);
        }
    }

    // A special token is written either as a string or as a serialized AddedToken {"content": ...}.
    private static string? TokenText(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => v.GetString(),
        JsonValueKind.Object => Str(v, "content"),
        _ => null,
    };

    // "chat_template" is a string, or a list of {"name", "template"} of which "default" is the one transformers uses.
    private static string? ReadChatTemplate(JsonElement root)
    {
        if (!root.TryGetProperty("chat_template", out var ct)) return null;
        if (ct.ValueKind == JsonValueKind.String) return ct.GetString();
        if (ct.ValueKind != JsonValueKind.Array) return null;
        foreach (var e in ct.EnumerateArray())
            if (e.ValueKind == JsonValueKind.Object && Str(e, "name") == "default") return Str(e, "template");
        return null;
    }

    private static string? Str(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static bool? Bool(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    /// <summary>Parses an optional JSON file; a broken file is an error naming it, a missing one is null.</summary>
    public static JsonDocument? ReadJson(string path)
    {
        if (!File.Exists(path)) return null;
        return ParseJsonFile(path);
    }

    public static JsonDocument ParseJsonFile(string path)
    {
        try
        {
            using var fs = File.OpenRead(path);
            return JsonDocument.Parse(fs, new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new PeftUserException($"Invalid JSON in '{path}': {e.Message}", UserErrorKind.Invalid, e);
        }
    }
}
