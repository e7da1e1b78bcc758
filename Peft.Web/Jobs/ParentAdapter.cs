using Peft.Storage.Blobs;
using Peft.Storage.Model;

namespace Peft.Web.Jobs;

/// <summary>
/// A catalog version a job continues training (<c>parent</c>): its files copied out of the blob store into a folder,
/// which the fine-tuning request names as <c>init_adapter</c>.
/// </summary>
public static class ParentAdapter
{
    /// <summary>Writes <paramref name="version"/>'s files into <paramref name="dir"/> (complete or absent: built aside, then moved).</summary>
    public static async Task<string> MaterializeAsync(AdapterVersion version, IBlobStore blobs, string dir, CancellationToken ct)
    {
        if (Directory.Exists(dir)) return dir;
        string staging = dir + ".partial-" + Guid.NewGuid().ToString("N");
        Directory.CreateDirectory(staging);
        try
        {
            foreach (var file in version.Files)
            {
                await using var source = await blobs.OpenReadAsync(file.Sha256, ct);
                await using var target = File.Create(Path.Combine(staging, Path.GetFileName(file.FileName)));
                await source.CopyToAsync(target, ct);
            }
            Directory.CreateDirectory(Path.GetDirectoryName(dir)!);
            try { Directory.Move(staging, dir); }
            catch (IOException) when (Directory.Exists(dir)) { } // another delivery got there first: same content
            return dir;
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }

    public static string Reference(AdapterVersion v) => $"{v.Adapter.Name}@{v.Number}";
}
