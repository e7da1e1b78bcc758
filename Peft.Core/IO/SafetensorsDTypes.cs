namespace Peft.Core.IO;

/// <summary>The safetensors dtype table: spelling, element size and writer rank.</summary>
public static class SafetensorsDTypes
{
    /// <param name="Rank">Position in the Rust crate's <c>Dtype</c> enum. The writer sorts by it descending, which
    /// is how the crate (and so Python's save_file) orders tensors; it is mostly, but not purely, by alignment
    /// (e.g. F32 precedes I32 and I64 precedes F64 whatever their names).</param>
    public sealed record Info(string Name, int Size, int Rank);

    private static readonly Info[] All =
    [
        new("BOOL", 1, 0),
        new("U8", 1, 1),
        new("I8", 1, 2),
        new("F8_E5M2", 1, 3),
        new("F8_E4M3", 1, 4),
        new("I16", 2, 5),
        new("U16", 2, 6),
        new("F16", 2, 7),
        new("BF16", 2, 8),
        new("I32", 4, 9),
        new("U32", 4, 10),
        new("F32", 4, 11),
        new("F64", 8, 12),
        new("I64", 8, 13),
        new("U64", 8, 14),
    ];

    private static readonly Dictionary<string, Info> ByName = All.ToDictionary(i => i.Name, StringComparer.Ordinal);

    public static Info? TryParse(string name) => ByName.GetValueOrDefault(name);
}
