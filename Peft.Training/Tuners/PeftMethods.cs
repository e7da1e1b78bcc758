using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Training.Tuners.AdaLora;
using Peft.Training.Tuners.Ia3;
using Peft.Training.Tuners.Lora;
using Peft.Training.Tuners.PrefixTuning;
using Peft.Training.Tuners.PromptTuning;
using Peft.Training.Tuners.PTuning;

namespace Peft.Training.Tuners;

/// <summary>The registered PEFT methods, keyed by <c>peft_type</c>. Adding a method = one line here.</summary>
public static class PeftMethods
{
    private static readonly Dictionary<string, IPeftMethod> Methods = new(StringComparer.Ordinal);

    static PeftMethods()
    {
        Register(new LoraMethod());
        Register(new Ia3Method());
        Register(new AdaLoraMethod());
        Register(new PrefixTuningMethod());
        Register(new PromptTuningMethod());
        Register(new PTuningMethod());
    }

    public static void Register(IPeftMethod method) => Methods[method.PeftType] = method;

    public static IPeftMethod Get(string peftType) =>
        Methods.TryGetValue(peftType, out var m) ? m
            : throw new PeftConfigException($"peft_type '{peftType}' is not supported (supported: {string.Join(", ", Methods.Keys.Order())})");

    public static IReadOnlyCollection<string> PeftTypes => Methods.Keys;
}

/// <summary>Reads <c>adapter_config.json</c> into the right config class by <c>peft_type</c>.</summary>
public static class PeftConfigs
{
    public static PeftConfig Load(string path)
    {
        if (Directory.Exists(path)) path = Path.Combine(path, "adapter_config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: adapter_config.json not found", path);
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new PeftConfigException($"{path}: invalid JSON ({e.Message})"); }
        if (node is not JsonObject obj) throw new PeftConfigException($"{path}: expected a JSON object");
        return Parse(obj, path);
    }

    public static PeftConfig Parse(JsonObject json, string source)
    {
        var r = new JsonFieldReader(json, source);
        string peftType = r.String("peft_type") ?? throw r.Error("peft_type", "is missing");
        PeftConfig config;
        try { config = PeftMethods.Get(peftType).CreateConfig(); }
        catch (PeftConfigException e) { throw new PeftConfigException($"{source}: {e.Message}"); }
        config.ReadCommon(r);
        try { config.Validate(); }
        catch (PeftConfigException e) { throw new PeftConfigException($"{source}: {e.Message}"); }
        return config;
    }
}
