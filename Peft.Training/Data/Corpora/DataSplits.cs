using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Peft.Training.Data.Corpora;

/// <summary>
/// Deterministic train/validation/test assignment: 90/5/5 by a SHA-256 bucket of a stable id (a chapter, an address,
/// a message), so a record keeps its split across machines, .NET versions and re-runs, and all paragraphs of one
/// unit land in the same split (no chapter is half in train and half in test). Tune on validation, never on test.
/// </summary>
public static class DataSplits
{
    public const string Train = "train", Validation = "validation", Test = "test";

    /// <summary>All split names, in order.</summary>
    public static IReadOnlyList<string> All { get; } = [Train, Validation, Test];

    /// <summary>The split of the unit named <paramref name="id"/> (e.g. "austen/emma/12").</summary>
    public static string Assign(string id) => Bucket(id) switch
    {
        < 90 => Train,
        < 95 => Validation,
        _ => Test,
    };

    /// <summary>0..99 from the first four bytes of SHA-256(UTF-8 id); independent of string hashing randomisation.</summary>
    public static int Bucket(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(id), hash);
        return (int)(BinaryPrimitives.ReadUInt32BigEndian(hash) % 100);
    }
}
