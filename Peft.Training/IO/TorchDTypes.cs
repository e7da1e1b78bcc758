using static TorchSharp.torch;

namespace Peft.Training.IO;

/// <summary>Safetensors dtypes ↔ TorchSharp scalar types (the table itself lives in <see cref="Peft.Core.IO.SafetensorsDTypes"/>).</summary>
internal static class TorchDTypes
{
    // Known to the format but without a TorchSharp 0.107 ScalarType (F8_*, U16, U32, U64): headers parse, Load refuses.
    private static readonly Dictionary<string, ScalarType> ByName = new(StringComparer.Ordinal)
    {
        ["BOOL"] = ScalarType.Bool, ["U8"] = ScalarType.Byte, ["I8"] = ScalarType.Int8, ["I16"] = ScalarType.Int16,
        ["F16"] = ScalarType.Float16, ["BF16"] = ScalarType.BFloat16, ["I32"] = ScalarType.Int32,
        ["F32"] = ScalarType.Float32, ["F64"] = ScalarType.Float64, ["I64"] = ScalarType.Int64,
    };

    private static readonly Dictionary<ScalarType, string> ByType = ByName.ToDictionary(kv => kv.Value, kv => kv.Key);

    public static ScalarType? ToScalarType(string dtype) => ByName.TryGetValue(dtype, out var t) ? t : null;

    public static SafetensorsDTypes.Info? From(ScalarType type) =>
        ByType.TryGetValue(type, out var name) ? SafetensorsDTypes.TryParse(name) : null;
}
