namespace Peft.Storage.Blobs;

/// <summary>A stored blob: its sha256 (the key), size and when it was written.</summary>
public sealed record BlobInfo(string Sha256, long Size, DateTimeOffset WrittenAt);

/// <summary>
/// Content-addressed file storage. Keys are lowercase hex sha256 of the content, so a blob never changes once
/// written and writing the same content twice stores it once. The local folder store is the default; an S3-compatible
/// store implements the same contract (put computes the hash while uploading, then commits under the hash key).
/// </summary>
public interface IBlobStore
{
    /// <summary>Stores the stream's content; returns its hash and size. Complete and durable when it returns.</summary>
    Task<BlobInfo> PutAsync(Stream content, CancellationToken cancellationToken);

    Task<bool> ExistsAsync(string sha256, CancellationToken cancellationToken);

    /// <summary>Re-reads the blob and checks its hash (what "verified" means before a version becomes ready).</summary>
    Task<bool> VerifyAsync(string sha256, CancellationToken cancellationToken);

    /// <summary>Opens the blob for reading; seekable for the local store. Throws FileNotFoundException when absent.</summary>
    Task<Stream> OpenReadAsync(string sha256, CancellationToken cancellationToken);

    /// <summary>A local file path for the blob when the store is on this machine (lets the web tier serve ranges), else null.</summary>
    string? TryGetLocalPath(string sha256);

    IAsyncEnumerable<BlobInfo> ListAsync(CancellationToken cancellationToken);

    Task DeleteAsync(string sha256, CancellationToken cancellationToken);

    /// <summary>Removes abandoned temporary uploads older than <paramref name="olderThan"/>; returns how many.</summary>
    Task<int> CleanTemporaryAsync(TimeSpan olderThan, CancellationToken cancellationToken);
}
