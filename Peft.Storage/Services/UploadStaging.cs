using Peft.Core;

namespace Peft.Storage.Services;

/// <summary>
/// A private scratch folder for one upload (under DataDir/staging), removed on dispose. Uploads are copied here with
/// their size limit enforced while copying, validated here, and only then stored.
/// </summary>
public sealed class UploadStaging : IDisposable
{
    public UploadStaging(string dataDir)
    {
        Path = System.IO.Path.Combine(dataDir, "staging", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    /// <summary>Copies <paramref name="content"/> to a staging file, refusing (413) past <paramref name="maxBytes"/>.</summary>
    public async Task<string> SaveAsync(Stream content, string fileName, long maxBytes, string what, CancellationToken ct)
    {
        var path = System.IO.Path.Combine(Path, fileName);
        await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
        var buffer = new byte[1 << 16];
        long total = 0;
        int n;
        while ((n = await content.ReadAsync(buffer, ct)) > 0)
        {
            total += n;
            if (total > maxBytes)
                throw new PeftUserException($"{what} is larger than the {maxBytes}-byte limit", UserErrorKind.TooLarge);
            await file.WriteAsync(buffer.AsMemory(0, n), ct);
        }
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (DirectoryNotFoundException) { }
        catch (IOException) { }
    }
}
