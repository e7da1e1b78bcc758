using Peft.Core;
using System.Text.Json.Nodes;
using Peft.Training.Models;
using static TorchSharp.torch;

namespace Peft.Training.Quantization;

/// <summary>
/// How to quantise a model's linear weights at load time (transformers' <c>BitsAndBytesConfig</c>:
/// <c>load_in_4bit</c> + <c>bnb_4bit_quant_type</c> + <c>bnb_4bit_use_double_quant</c>, or <c>load_in_8bit</c>).
/// </summary>
public sealed record QuantizationConfig
{
    public required QuantMethod Method { get; init; }
    /// <summary>Double quantisation of the 4-bit absmax values (<c>bnb_4bit_use_double_quant</c>).</summary>
    public bool DoubleQuant { get; init; }
    /// <summary>dtype weights are dequantised to for the matmul; null = the model's dtype (float32 unless loaded in bf16).</summary>
    public ScalarType? ComputeDType { get; init; }
    /// <summary>Module names (or name prefixes) left in full precision (<c>llm_int8_skip_modules</c>) besides the heads.</summary>
    public IReadOnlyList<string> SkipModules { get; init; } = [];

    /// <summary>Parses the CLI/library spelling: <c>nf4</c>, <c>fp4</c> or <c>int8</c>.</summary>
    public static QuantMethod ParseMethod(string s) => s.ToLowerInvariant() switch
    {
        "nf4" => QuantMethod.Nf4,
        "fp4" => QuantMethod.Fp4,
        "int8" or "8bit" => QuantMethod.Int8,
        _ => throw new PeftUserException($"unknown quantization '{s}' (expected nf4, fp4 or int8)", UserErrorKind.BadRequest),
    };

    /// <summary>
    /// The config for a method name and the double-quantisation switch (null method = no quantisation), as the CLI
    /// flags and the fine-tuning request spell them; errors name <paramref name="methodKey"/> / <paramref name="doubleQuantKey"/>.
    /// </summary>
    public static QuantizationConfig? FromNames(string? method, bool doubleQuant, string methodKey, string doubleQuantKey)
    {
        if (method is null)
        {
            if (doubleQuant) throw new PeftUserException($"{doubleQuantKey} needs {methodKey} nf4 or fp4", UserErrorKind.BadRequest);
            return null;
        }
        QuantMethod m;
        try { m = ParseMethod(method); }
        catch (PeftUserException e) { throw new PeftUserException($"{methodKey}: {e.Message}", UserErrorKind.BadRequest); }
        if (doubleQuant && m == QuantMethod.Int8) throw new PeftUserException($"{doubleQuantKey} applies to nf4 and fp4 only", UserErrorKind.BadRequest);
        return new QuantizationConfig { Method = m, DoubleQuant = doubleQuant };
    }

    public static string MethodName(QuantMethod m) => m switch { QuantMethod.Nf4 => "nf4", QuantMethod.Fp4 => "fp4", _ => "int8" };

    /// <summary><c>quantization_config</c> as transformers writes it for a bitsandbytes model.</summary>
    public JsonObject ToJson(ScalarType computeDType)
    {
        bool four = Method != QuantMethod.Int8;
        return new JsonObject
        {
            ["_load_in_4bit"] = four,
            ["_load_in_8bit"] = !four,
            ["bnb_4bit_compute_dtype"] = DTypes.ToHfName(computeDType),
            ["bnb_4bit_quant_storage"] = "uint8",
            ["bnb_4bit_quant_type"] = four ? MethodName(Method) : "fp4",
            ["bnb_4bit_use_double_quant"] = four && DoubleQuant,
            ["llm_int8_enable_fp32_cpu_offload"] = false,
            ["llm_int8_has_fp16_weight"] = false,
            ["llm_int8_skip_modules"] = SkipModules.Count == 0 ? null : new JsonArray(SkipModules.Select(s => (JsonNode?)s).ToArray()),
            ["llm_int8_threshold"] = 6.0,
            ["load_in_4bit"] = four,
            ["load_in_8bit"] = !four,
            ["quant_method"] = "bitsandbytes",
        };
    }

    /// <summary>Reads config.json's <c>quantization_config</c> (null when absent); errors name the field.</summary>
    public static QuantizationConfig? FromModelConfig(ModelConfig config)
    {
        if (config.Json["quantization_config"] is not JsonObject q) return null;
        string method = q["quant_method"]?.GetValue<string>() ?? "bitsandbytes";
        if (method != "bitsandbytes")
            throw config.Error("quantization_config.quant_method", $"'{method}' is not supported (only bitsandbytes)");
        bool Flag(string k) => q[k] is JsonValue v && v.TryGetValue<bool>(out var b) && b;
        QuantMethod m;
        if (Flag("load_in_8bit") || Flag("_load_in_8bit")) m = QuantMethod.Int8;
        else if (Flag("load_in_4bit") || Flag("_load_in_4bit"))
        {
            string type = q["bnb_4bit_quant_type"]?.GetValue<string>() ?? "fp4";
            m = type switch
            {
                "nf4" => QuantMethod.Nf4,
                "fp4" => QuantMethod.Fp4,
                _ => throw config.Error("quantization_config.bnb_4bit_quant_type", $"'{type}' is not supported (nf4 or fp4)"),
            };
        }
        else throw config.Error("quantization_config", "neither load_in_4bit nor load_in_8bit is true");
        var skip = q["llm_int8_skip_modules"] is JsonArray a ? a.Select(n => n!.GetValue<string>()).ToList() : [];
        ScalarType? compute = q["bnb_4bit_compute_dtype"]?.GetValue<string>() is { } cd ? DTypes.FromHfName(cd) : null;
        return new QuantizationConfig { Method = m, DoubleQuant = Flag("bnb_4bit_use_double_quant"), ComputeDType = compute, SkipModules = skip };
    }
}
