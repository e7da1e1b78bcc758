using System.IO.Compression;
using Peft.Core;

namespace Peft.Storage.Validation;

/// <summary>
/// Unpacks an uploaded adapter zip (the HF PEFT layout: adapter_config.json + adapter_model.safetensors, optionally in
/// one top folder, README.md ignored) with zip-slip, nested-archive and zip-bomb checks. Sizes are enforced on the
/// bytes actually inflated, not on what the entry headers claim.
/// </summary>
public static class AdapterArchive
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";
    private static readonly HashSet<string> Ignored = new(StringComparer.Ordinal) { "README.md", ".gitattributes" };
    private static readonly string[] ArchiveExtensions = [".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".7z", ".rar", ".zst"];

    public static (string ConfigPath, string WeightsPath) Extract(string zipPath, string outDir, UploadLimits limits)
    {
        ZipArchive zip;
        try { zip = ZipFile.OpenRead(zipPath); }
        catch (InvalidDataException e) { throw Refuse($"field 'file' is not a valid zip archive ({e.Message})"); }
        using (zip)
        {
            if (zip.Entries.Count > limits.MaxZipEntries)
                throw Refuse($"the archive has {zip.Entries.Count} entries; at most {limits.MaxZipEntries} are accepted");
            var problems = new List<string>();
            var found = new Dictionary<string, ZipArchiveEntry>(StringComparer.Ordinal);
            var root = Path.GetFullPath(outDir) + Path.DirectorySeparatorChar;
            foreach (var entry in zip.Entries)
            {
                var name = entry.FullName;
                if (name.Contains('\\')) { problems.Add($"entry '{name}' uses '\\' in its path"); continue; }
                if (name.StartsWith('/') || Path.IsPathRooted(name) || (name.Length > 1 && name[1] == ':'))
                {
                    problems.Add($"entry '{name}' has an absolute path (zip slip)");
                    continue;
                }
                var segments = name.Split('/');
                if (segments.Contains("..") || !Path.GetFullPath(Path.Combine(outDir, name)).StartsWith(root, StringComparison.Ordinal))
                {
                    problems.Add($"entry '{name}' escapes the archive folder (zip slip)");
                    continue;
                }
                if (name.EndsWith('/')) continue; // a folder entry
                if (segments.Length > 2) { problems.Add($"entry '{name}' is nested too deep (files must be at the top or in one folder)"); continue; }
                var file = segments[^1];
                if (ArchiveExtensions.Any(x => file.EndsWith(x, StringComparison.OrdinalIgnoreCase)))
                {
                    problems.Add($"entry '{name}' is an archive; nested archives are not accepted");
                    continue;
                }
                if (Ignored.Contains(file)) continue;
                if (file is not (ConfigFile or WeightsFile))
                {
                    problems.Add($"entry '{name}' is not part of an adapter (expected {ConfigFile} and {WeightsFile})");
                    continue;
                }
                if (!found.TryAdd(file, entry)) problems.Add($"the archive holds {file} more than once");
            }
            if (problems.Count == 0)
            {
                if (!found.ContainsKey(ConfigFile)) problems.Add($"the archive has no {ConfigFile}");
                if (!found.ContainsKey(WeightsFile)) problems.Add($"the archive has no {WeightsFile}");
                if (found.Values.Select(e => Path.GetDirectoryName(e.FullName)).Distinct().Count() > 1)
                    problems.Add($"{ConfigFile} and {WeightsFile} are in different folders");
            }
            if (problems.Count > 0) throw new CatalogValidationException("Invalid adapter archive", problems);

            var configPath = Inflate(found[ConfigFile], Path.Combine(outDir, ConfigFile), limits.MaxConfigBytes, limits);
            var weightsPath = Inflate(found[WeightsFile], Path.Combine(outDir, WeightsFile), limits.MaxAdapterWeightsBytes, limits);
            return (configPath, weightsPath);
        }
    }

    private static string Inflate(ZipArchiveEntry entry, string path, long maxBytes, UploadLimits limits)
    {
        if (entry.Length > maxBytes)
            throw TooLarge($"entry '{entry.FullName}' unpacks to {entry.Length} bytes, over the {maxBytes}-byte limit");
        // A tiny entry that inflates enormously is a bomb even under the size cap; small files are exempt (JSON compresses well).
        if (entry.Length > (1 << 20) && entry.Length > (long)limits.MaxCompressionRatio * Math.Max(1, entry.CompressedLength))
            throw TooLarge($"entry '{entry.FullName}' inflates {entry.Length / Math.Max(1, entry.CompressedLength)}× (zip bomb); at most {limits.MaxCompressionRatio}× is accepted");
        using var input = entry.Open();
        using var output = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        var buffer = new byte[1 << 16];
        long total = 0;
        int n;
        try
        {
            while ((n = input.Read(buffer)) > 0)
            {
                total += n;
                // The header's sizes are the uploader's claim; count what actually comes out.
                if (total > maxBytes || total > entry.Length)
                    throw TooLarge($"entry '{entry.FullName}' inflates past its declared size or the {maxBytes}-byte limit (zip bomb)");
                output.Write(buffer, 0, n);
            }
        }
        catch (InvalidDataException e)
        {
            throw Refuse($"entry '{entry.FullName}' is corrupt ({e.Message})");
        }
        return path;
    }

    private static CatalogValidationException Refuse(string problem) => new("Invalid adapter archive", [problem]);

    private static CatalogValidationException TooLarge(string problem) => new("Adapter archive too large", [problem], UserErrorKind.TooLarge);
}
