using static TorchSharp.torch;

namespace Peft.Training.IO;

/// <summary>The safetensors dtype table: spelling, element size, writer rank and TorchSharp type.</summary>
internal static class SafetensorsDTypes
{
    /// <param name="Rank">Position in the Rust crate's <c>Dtype</c> enum. The writer sorts by it descending, which
    /// is how the crate (and so Python's save_file) orders tensors; it is mostly, but not purely, by alignment
    /// (e.g. F32 precedes I32 and I64 precedes F64 whatever their names).</param>
    internal sealed record Info(string Name, int Size, int Rank, ScalarType? ScalarType);

    private static readonly Info[] All =
    [
        new("BOOL", 1, 0, ScalarType.Bool),
        new("U8", 1, 1, ScalarType.Byte),
        new("I8", 1, 2, ScalarType.Int8),
        // Known to the format but without a TorchSharp 0.107 ScalarType: headers parse, Load refuses.
        new("F8_E5M2", 1, 3, null),
        new("F8_E4M3", 1, 4, null),
        new("I16", 2, 5, ScalarType.Int16),
        new("U16", 2, 6, null),
        new("F16", 2, 7, ScalarType.Float16),
        new("BF16", 2, 8, ScalarType.BFloat16),
        new("I32", 4, 9, ScalarType.Int32),
        new("U32", 4, 10, null),
        new("F32", 4, 11, ScalarType.Float32),
        new("F64", 8, 12, ScalarType.Float64),
        new("I64", 8, 13, ScalarType.Int64),
        new("U64", 8, 14, null),
    ];

    private static readonly Dictionary<string, Info> ByName = All.ToDictionary(i => i.Name, StringComparer.Ordinal);

    private static readonly Dictionary<ScalarType, Info> ByScalarType =
        All.Where(i => i.ScalarType is not null).ToDictionary(i => i.ScalarType!.Value);

    public static Info? TryParse(string name) => ByName.GetValueOrDefault(name);

    public static Info? TryFrom(ScalarType type) => ByScalarType.GetValueOrDefault(type);
}
