using System.Runtime.InteropServices;

namespace Peft.Training.Quantization;

/// <summary>
/// glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which blocks of that size
/// come from the heap and stay resident when freed. A quantised model frees a dequantised weight per matmul, so
/// without a fixed threshold those buffers pile up and a QLoRA step's RSS exceeded a bf16 LoRA step's (wide80m: 748
/// vs 382 MB; 356 vs 364 MB with the threshold fixed). Fixing it (mallopt) turns the dynamic raise off.
/// </summary>
internal static partial class NativeHeap
{
    private const int M_MMAP_THRESHOLD = -3;
    private static int s_done;

    /// <summary>Blocks of 64 KiB and more are mmap'd and go back to the system when freed. Once per process; glibc only.</summary>
    public static void FixMmapThreshold()
    {
        if (!OperatingSystem.IsLinux() || Interlocked.Exchange(ref s_done, 1) == 1) return;
        try { mallopt(M_MMAP_THRESHOLD, 64 * 1024); }
        catch (EntryPointNotFoundException) { }   // not glibc (musl)
        catch (DllNotFoundException) { }
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int mallopt(int param, int value);
}
