using System.Runtime.InteropServices;

namespace Peft.Training.Training;

/// <summary>
/// Hands freed native heap pages back to the OS. libtorch's CPU tensors come from glibc malloc, which keeps freed
/// megabyte-sized blocks in its heap (its mmap threshold rises after the first frees), so a training process's RSS
/// grew by several MB a step although no tensor outlived its step (the live-tensor count stays constant).
/// <c>malloc_trim</c> after every step keeps it flat at no measurable cost (the freed pages are handed back, so the
/// heap's fragmentation cannot add up from step to step: base120m LoRA with checkpointing peaked 1,311 MB at the third
/// step without it, 1,163 MB with it). A fixed <c>MALLOC_MMAP_THRESHOLD_</c> removes the fragmentation altogether
/// (934 MB) but costs 45–75 % more time (every tensor faults in fresh pages). A no-op where glibc is absent.
/// </summary>
public static partial class NativeHeap
{
    private static bool _unavailable = !OperatingSystem.IsLinux();

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);

    public static void Trim()
    {
        if (_unavailable) return;
        try { MallocTrim(0); }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException) { _unavailable = true; }
    }
}
