using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Core.Configs;

/// <summary>
/// Reads <c>adapter_config.json</c> into the right config class by <c>peft_type</c>. The config half of PEFT's
/// method table; the engine pairs each type with its tuner, the catalog uses it to validate uploads without torch.
/// </summary>
public static class PeftConfigs
{
    private static readonly Dictionary<string, Func<PeftConfig>> Factories = new(StringComparer.Ordinal)
    {
        ["LORA"] = () => new LoraConfig(),
        ["IA3"] = () => new Ia3Config(),
        ["ADALORA"] = () => new AdaLoraConfig(),
        ["PREFIX_TUNING"] = () => new PrefixTuningConfig(),
        ["PROMPT_TUNING"] = () => new PromptTuningConfig(),
        ["P_TUNING"] = () => new PromptEncoderConfig(),
    };

    /// <summary>Every <c>peft_type</c> this version reads and writes.</summary>
    public static IReadOnlyCollection<string> PeftTypes => Factories.Keys;

    /// <summary>A fresh config with PEFT's defaults for <paramref name="peftType"/>.</summary>
    public static PeftConfig Create(string peftType) =>
        Factories.TryGetValue(peftType, out var f) ? f()
            : throw new PeftConfigException($"peft_type '{peftType}' is not supported (supported: {string.Join(", ", Factories.Keys.Order())})");

    public static PeftConfig Load(string path)
    {
        if (Directory.Exists(path)) path = Path.Combine(path, "adapter_config.json");
        if (!File.Exists(path)) throw new PeftUserException($"{path}: adapter_config.json not found", UserErrorKind.NotFound);
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new PeftConfigException($"{path}: invalid JSON ({e.Message})"); }
        if (node is not JsonObject obj) throw new PeftConfigException($"{path}: expected a JSON object");
        return Parse(obj, path);
    }

    public static PeftConfig Parse(JsonObject json, string source) => Parse(json, source, validate: true);

    internal static PeftConfig Parse(JsonObject json, string source, bool validate)
    {
        var r = new JsonFieldReader(json, source);
        string peftType = r.String("peft_type") ?? throw r.Error("peft_type", "is missing");
        PeftConfig config;
        try { config = Create(peftType); }
        catch (PeftConfigException e) { throw new PeftConfigException($"{source}: {e.Message}"); }
        config.ReadCommon(r);
        if (!validate) return config;
        try { config.Validate(); }
        catch (PeftConfigException e) { throw new PeftConfigException($"{source}: {e.Message}"); }
        return config;
    }
}
