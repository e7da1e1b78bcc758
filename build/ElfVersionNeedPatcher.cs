// Marks a GNU version-need entry (e.g. GLIBCXX_3.4.32) of an ELF64 shared library as weak (VER_FLG_WEAK),
// so the dynamic loader no longer refuses the library when the system libstdc++ lacks that version.
// TorchSharp 0.107's libLibTorchSharp.so needs GLIBCXX_3.4.32 only for std::ios_base_library_init(), a
// link anchor with no relocation that is never called, so a weak need is safe on Debian 12 (GCC 12).
// Used by build/TorchSharpGlibcxxFix.targets (as an inline MSBuild task) and by Peft.Tests.
using System;
using System.IO;
using System.Text;

namespace Peft.Build
{
    public static class ElfVersionNeedPatcher
    {
        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const ushort VerFlgWeak = 0x2;

        /// <summary>Outcome of <see cref="MarkWeak"/>.</summary>
        public enum Result { Patched, AlreadyWeak, VersionNotNeeded, NotElf64 }

        /// <summary>Returns the flags of the version-need entry named <paramref name="version"/>, or null if absent.</summary>
        public static ushort? ReadFlags(byte[] elf, string version)
        {
            long pos = FindVernaux(elf, version);
            return pos < 0 ? (ushort?)null : BitConverter.ToUInt16(elf, (int)pos + 4);
        }

        /// <summary>Sets VER_FLG_WEAK on the version-need entry named <paramref name="version"/>, in place.</summary>
        public static Result MarkWeak(byte[] elf, string version)
        {
            if (!IsElf64Le(elf)) return Result.NotElf64;
            long pos = FindVernaux(elf, version);
            if (pos < 0) return Result.VersionNotNeeded;
            ushort flags = BitConverter.ToUInt16(elf, (int)pos + 4);
            if ((flags & VerFlgWeak) != 0) return Result.AlreadyWeak;
            BitConverter.GetBytes((ushort)(flags | VerFlgWeak)).CopyTo(elf, (int)pos + 4);
            return Result.Patched;
        }

        /// <summary>Patches a file on disk (atomically: temp file + rename). Returns what was done.</summary>
        public static Result MarkWeakInFile(string path, string version)
        {
            byte[] bytes = File.ReadAllBytes(path);
            Result r = MarkWeak(bytes, version);
            if (r != Result.Patched) return r;
            string tmp = path + ".patching";
            File.WriteAllBytes(tmp, bytes);
            File.Replace(tmp, path, null);
            return r;
        }

        /// <summary>True if the library file at <paramref name="libPath"/> defines the symbol version string.</summary>
        public static bool LibraryProvidesVersion(string libPath, string version)
        {
            if (!File.Exists(libPath)) return false;
            byte[] data = File.ReadAllBytes(libPath);
            byte[] needle = Encoding.ASCII.GetBytes(version + "\0");
            return IndexOf(data, needle) >= 0;
        }

        private static bool IsElf64Le(byte[] e) =>
            e.Length > 64 && e[0] == 0x7f && e[1] == (byte)'E' && e[2] == (byte)'L' && e[3] == (byte)'F' && e[4] == 2 && e[5] == 1;

        private static long FindVernaux(byte[] e, string version)
        {
            if (!IsElf64Le(e)) return -1;
            long shoff = (long)BitConverter.ToUInt64(e, 0x28);
            int shentsize = BitConverter.ToUInt16(e, 0x3A);
            int shnum = BitConverter.ToUInt16(e, 0x3C);
            for (int i = 0; i < shnum; i++)
            {
                long sh = shoff + (long)i * shentsize;
                if (sh + 64 > e.Length) return -1;
                if (BitConverter.ToUInt32(e, (int)sh + 4) != ShtGnuVerneed) continue;
                long off = (long)BitConverter.ToUInt64(e, (int)sh + 24);
                uint link = BitConverter.ToUInt32(e, (int)sh + 40);
                uint count = BitConverter.ToUInt32(e, (int)sh + 44);
                long strSh = shoff + (long)link * shentsize;
                long strOff = (long)BitConverter.ToUInt64(e, (int)strSh + 24);
                long vn = off;
                for (uint n = 0; n < count; n++)
                {
                    int cnt = BitConverter.ToUInt16(e, (int)vn + 2);
                    long aux = vn + BitConverter.ToUInt32(e, (int)vn + 8);
                    for (int a = 0; a < cnt; a++)
                    {
                        uint name = BitConverter.ToUInt32(e, (int)aux + 8);
                        if (ReadCString(e, strOff + name) == version) return aux;
                        uint next = BitConverter.ToUInt32(e, (int)aux + 12);
                        if (next == 0) break;
                        aux += next;
                    }
                    uint vnNext = BitConverter.ToUInt32(e, (int)vn + 12);
                    if (vnNext == 0) break;
                    vn += vnNext;
                }
            }
            return -1;
        }

        private static string ReadCString(byte[] e, long at)
        {
            int end = (int)at;
            while (end < e.Length && e[end] != 0) end++;
            return Encoding.ASCII.GetString(e, (int)at, end - (int)at);
        }

        private static int IndexOf(byte[] hay, byte[] needle)
        {
            for (int i = 0; i <= hay.Length - needle.Length; i++)
            {
                int j = 0;
                while (j < needle.Length && hay[i + j] == needle[j]) j++;
                if (j == needle.Length) return i;
            }
            return -1;
        }
    }

#if !PEFT_ELF_TESTS
    /// <summary>MSBuild task: weakens one version need in each given library when the system lacks it.</summary>
    public class WeakenElfVersionNeed : Microsoft.Build.Utilities.Task
    {
        [Microsoft.Build.Framework.Required] public Microsoft.Build.Framework.ITaskItem[] Libraries { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();
        [Microsoft.Build.Framework.Required] public string Version { get; set; } = "";
        [Microsoft.Build.Framework.Required] public string SystemLibrary { get; set; } = "";

        public override bool Execute()
        {
            if (ElfVersionNeedPatcher.LibraryProvidesVersion(SystemLibrary, Version))
                return true; // the system library is new enough: leave the file alone
            foreach (var item in Libraries)
            {
                string path = item.ItemSpec;
                if (!File.Exists(path)) continue;
                var r = ElfVersionNeedPatcher.MarkWeakInFile(path, Version);
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, $"{path}: {Version} {r}");
            }
            return true;
        }
    }
#endif
}
