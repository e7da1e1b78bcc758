using Peft.Build;

namespace Peft.Tests.Build;

/// <summary>The build step that lets TorchSharp's native library load on Debian 12's libstdc++ (GCC 12).</summary>
public class ElfVersionNeedPatcherTests
{
    private const string Version = "GLIBCXX_3.4.32";
    private const string SystemLib = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6";

    private static string PackageCopy()
    {
        string root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        return Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
    }

    private static string OutputCopy() => Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    [Fact]
    public void MarksTheVersionNeedWeakInPlace()
    {
        byte[] original = File.ReadAllBytes(PackageCopy());
        Assert.Equal((ushort)0, ElfVersionNeedPatcher.ReadFlags(original, Version));
        byte[] copy = (byte[])original.Clone();
        Assert.Equal(ElfVersionNeedPatcher.Result.Patched, ElfVersionNeedPatcher.MarkWeak(copy, Version));
        Assert.Equal((ushort)2, ElfVersionNeedPatcher.ReadFlags(copy, Version));
        Assert.Equal(ElfVersionNeedPatcher.Result.AlreadyWeak, ElfVersionNeedPatcher.MarkWeak(copy, Version));
        // Only the flags field changes (one byte: 0x0000 → 0x0002).
        Assert.Equal(1, original.Zip(copy).Count(p => p.First != p.Second));
        Assert.Equal(ElfVersionNeedPatcher.Result.VersionNotNeeded, ElfVersionNeedPatcher.MarkWeak(copy, "GLIBCXX_99.0"));
        Assert.Equal(ElfVersionNeedPatcher.Result.NotElf64, ElfVersionNeedPatcher.MarkWeak(new byte[100], Version));
    }

    [Fact]
    public void BuildPatchedOnlyTheOutputCopyWhenTheSystemLacksTheVersion()
    {
        bool systemHasIt = ElfVersionNeedPatcher.LibraryProvidesVersion(SystemLib, Version);
        ushort? output = ElfVersionNeedPatcher.ReadFlags(File.ReadAllBytes(OutputCopy()), Version);
        Assert.Equal(systemHasIt ? (ushort)0 : (ushort)2, output);
        Assert.Equal((ushort)0, ElfVersionNeedPatcher.ReadFlags(File.ReadAllBytes(PackageCopy()), Version));
    }
}
