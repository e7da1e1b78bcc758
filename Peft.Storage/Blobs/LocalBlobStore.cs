using System.Runtime.CompilerServices;
using System.Security.Cryptography;

namespace Peft.Storage.Blobs;

/// <summary>
/// Blobs under <c>root/sha256/ab/cd/abcd…</c>. A put streams into <c>root/tmp/</c> while hashing, fsyncs, then renames
/// onto the hash path, so a blob path only ever holds complete content (a crash leaves at most a temp file, which
/// <see cref="CleanTemporaryAsync"/> removes).
/// </summary>
public sealed class LocalBlobStore : IBlobStore
{
    private readonly string _root;
    private readonly string _tmp;

    public LocalBlobStore(string root)
    {
        _root = Path.GetFullPath(root);
        _tmp = Path.Combine(_root, "tmp");
        Directory.CreateDirectory(Path.Combine(_root, "sha256"));
        Directory.CreateDirectory(_tmp);
    }

    public async Task<BlobInfo> PutAsync(Stream content, CancellationToken cancellationToken)
    {
        var tmp = Path.Combine(_tmp, Guid.NewGuid().ToString("N"));
        try
        {
            string sha;
            long size;
            await using (var file = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buffer = new byte[1 << 16];
                int n;
                while ((n = await content.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    hash.AppendData(buffer, 0, n);
                    await file.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
                }
                await file.FlushAsync(cancellationToken);
                file.Flush(flushToDisk: true);
                size = file.Length;
                sha = Convert.ToHexStringLower(hash.GetHashAndReset());
            }
            var path = PathOf(sha);
            if (File.Exists(path))
                return new BlobInfo(sha, size, File.GetLastWriteTimeUtc(path));
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.Move(tmp, path, overwrite: true);
            return new BlobInfo(sha, size, DateTimeOffset.UtcNow);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public Task<bool> ExistsAsync(string sha256, CancellationToken cancellationToken) => Task.FromResult(File.Exists(PathOf(sha256)));

    public async Task<bool> VerifyAsync(string sha256, CancellationToken cancellationToken)
    {
        var path = PathOf(sha256);
        if (!File.Exists(path)) return false;
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.Asynchronous);
        var hash = await SHA256.HashDataAsync(stream, cancellationToken);
        return Convert.ToHexStringLower(hash) == sha256;
    }

    public Task<Stream> OpenReadAsync(string sha256, CancellationToken cancellationToken)
    {
        var path = PathOf(sha256);
        if (!File.Exists(path)) throw new FileNotFoundException($"blob {sha256} is missing from the store", path);
        return Task.FromResult<Stream>(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.Asynchronous));
    }

    public string? TryGetLocalPath(string sha256)
    {
        var path = PathOf(sha256);
        return File.Exists(path) ? path : null;
    }

    public async IAsyncEnumerable<BlobInfo> ListAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        foreach (var file in Directory.EnumerateFiles(Path.Combine(_root, "sha256"), "*", SearchOption.AllDirectories))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var name = Path.GetFileName(file);
            if (!IsSha256(name)) continue;
            var info = new FileInfo(file);
            yield return new BlobInfo(name, info.Length, info.LastWriteTimeUtc);
        }
        await Task.CompletedTask;
    }

    public Task DeleteAsync(string sha256, CancellationToken cancellationToken)
    {
        var path = PathOf(sha256);
        if (File.Exists(path)) File.Delete(path);
        return Task.CompletedTask;
    }

    public Task<int> CleanTemporaryAsync(TimeSpan olderThan, CancellationToken cancellationToken)
    {
        int removed = 0;
        var cutoff = DateTime.UtcNow - olderThan;
        foreach (var file in Directory.EnumerateFiles(_tmp))
        {
            if (File.GetLastWriteTimeUtc(file) > cutoff) continue;
            File.Delete(file);
            removed++;
        }
        return Task.FromResult(removed);
    }

    public static bool IsSha256(string s) => s.Length == 64 && s.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f');

    private string PathOf(string sha256)
    {
        if (!IsSha256(sha256)) throw new ArgumentException($"'{sha256}' is not a lowercase sha256", nameof(sha256));
        return Path.Combine(_root, "sha256", sha256[..2], sha256[2..4], sha256);
    }
}
