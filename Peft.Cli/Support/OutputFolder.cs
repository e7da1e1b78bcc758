namespace Peft.Cli.Support;

/// <summary>
/// An output folder built under a temporary name next to its destination and renamed into place by
/// <see cref="Commit"/>, so a failure never leaves a half-written result (Dispose removes the temporary folder).
/// </summary>
internal sealed class OutputFolder : IDisposable
{
    private readonly string _target;
    private bool _committed;

    private OutputFolder(string target, string temp)
    {
        _target = target;
        TempPath = temp;
    }

    /// <summary>Where the command writes; renamed to the destination on <see cref="Commit"/>.</summary>
    public string TempPath { get; }

    /// <summary>Refuses a non-empty destination unless <paramref name="force"/>, and any of <paramref name="inputs"/>.</summary>
    public static OutputFolder Begin(string target, bool force, IEnumerable<string> inputs)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(target));
        if (File.Exists(full)) throw new UsageException($"--out {target}: is a file, expected a folder");
        foreach (var input in inputs)
            if (string.Equals(full, Path.TrimEndingDirectorySeparator(Path.GetFullPath(input)), StringComparison.Ordinal))
                throw new UsageException($"--out {target}: is one of the inputs; choose another folder");
        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any() && !force)
            throw new UsageException($"--out {target}: folder exists and is not empty (use --force to replace it)");
        string parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        string temp = Path.Combine(parent, $".{Path.GetFileName(full)}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        return new OutputFolder(full, temp);
    }

    /// <summary>Moves <paramref name="builtFolder"/> (default: the temporary folder) to the destination.</summary>
    public void Commit(string? builtFolder = null)
    {
        string source = builtFolder ?? TempPath;
        if (Directory.Exists(_target))
        {
            // A rename cannot replace a non-empty folder: move the old one aside, then delete it once replaced.
            string old = $"{_target}.old-{Guid.NewGuid():N}";
            Directory.Move(_target, old);
            Directory.Move(source, _target);
            Directory.Delete(old, true);
        }
        else
        {
            Directory.Move(source, _target);
        }
        _committed = true;
        if (Directory.Exists(TempPath)) Directory.Delete(TempPath, true);
    }

    public void Dispose()
    {
        if (_committed || !Directory.Exists(TempPath)) return;
        try { Directory.Delete(TempPath, true); }
        catch (IOException) { } // best effort: the original error matters more
        catch (UnauthorizedAccessException) { }
    }
}
