using System.Security.Cryptography;
using System.Text;

namespace Peft.Storage.Services;

internal static class Hashing
{
    public static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    public static async Task<string> Sha256FileAsync(string path, CancellationToken ct)
    {
        await using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(s, ct));
    }

    /// <summary>A hash over (name, hash) pairs in name order: one identity for a set of files.</summary>
    public static string Combine(IEnumerable<(string Name, string Sha256)> files) =>
        Sha256(Encoding.UTF8.GetBytes(string.Concat(files.OrderBy(f => f.Name, StringComparer.Ordinal).Select(f => $"{f.Name}\t{f.Sha256}\n"))));
}
