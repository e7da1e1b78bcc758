using System.Runtime.InteropServices;
using TorchSharp;

namespace Peft.Bench;

/// <summary>What the numbers were measured on (printed above every table).</summary>
public sealed record MachineInfo(string Cpu, int Cores, double MemoryGiB, string Os, string Runtime, string TorchSharp, string LibTorch, int Threads)
{
    public static MachineInfo Current()
    {
        string cpu = "unknown";
        if (File.Exists("/proc/cpuinfo"))
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
        double memGiB = 0;
        if (File.Exists("/proc/meminfo"))
        {
            var line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal", StringComparison.Ordinal));
            memGiB = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0 / 1024.0;
        }
        string tsVersion = typeof(torch).Assembly.GetName().Version?.ToString(3) ?? "?";
        return new MachineInfo(cpu, Environment.ProcessorCount, Math.Round(memGiB, 1), RuntimeInformation.OSDescription,
            RuntimeInformation.FrameworkDescription, tsVersion, "2.10.0", torch.get_num_threads());
    }

    public string ToMarkdown() =>
        $"- CPU: {Cpu} ({Cores} cores), memory {MemoryGiB} GiB, {Os}\n" +
        $"- {Runtime}, TorchSharp {TorchSharp} (libtorch {LibTorch}), torch threads {Threads}, float32";
}

/// <summary>Peak resident memory of this process (Linux VmHWM), in MB.</summary>
public static class ProcessMemory
{
    public static double PeakRssMb() => ReadKb("VmHWM:") / 1024.0;
    public static double CurrentRssMb() => ReadKb("VmRSS:") / 1024.0;

    /// <summary>
    /// Resets VmHWM to the current RSS (Linux: "5" to /proc/self/clear_refs), so a later peak covers only what follows.
    /// Garbage is collected and glibc's free heap returned to the system first: otherwise what loading freed (e.g. the
    /// float weights a quantised load read and dropped) stays resident and is counted in the next peak.
    /// </summary>
    public static void ResetPeak()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        if (!OperatingSystem.IsLinux()) return;
        try { malloc_trim(0); } catch (EntryPointNotFoundException) { } catch (DllNotFoundException) { }   // not glibc (musl)
        if (File.Exists("/proc/self/clear_refs")) File.WriteAllText("/proc/self/clear_refs", "5");
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(nuint pad);

    private static long ReadKb(string key)
    {
        if (!File.Exists("/proc/self/status")) return 0;
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    }
}
