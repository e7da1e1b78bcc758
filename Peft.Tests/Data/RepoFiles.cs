namespace Peft.Tests.Data;

/// <summary>Files committed at the repository root (data/, models/), found by walking up from the test binaries.</summary>
internal static class RepoFiles
{
    public static string Root { get; } = FindRoot();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Peft.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"No Peft.sln above {AppContext.BaseDirectory}.");
    }
}
