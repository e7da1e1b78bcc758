using System.Collections;

namespace Peft.Training.Tuners;

/// <summary>
/// One adapter name per batch row, for a caller that decodes the same rows step after step: layers may keep the per-row
/// tensors they gather (stacked LoRA factors, IA³ row scales) for as long as the same instance comes back. Adding,
/// deleting or hot-swapping an adapter clears what the layers concerned keep; the caller makes a new instance when the
/// rows change (the serving loop does on every join and leave). LoRA layers also keep the adapter slots these stacks are
/// gathered from across instances, so until <see cref="PeftModel.ReleaseRowCaches"/> (which frees both) adapter weights
/// may change only through adding, deleting or hot-swapping adapters, not by writing into their tensors (a changed
/// scaling or rank is noticed). A plain list is never cached.
/// </summary>
public sealed class StableRowAdapters(IReadOnlyList<string> names) : IReadOnlyList<string>
{
    private readonly string[] _names = names.ToArray();

    public string this[int index] => _names[index];
    public int Count => _names.Length;
    public IEnumerator<string> GetEnumerator() => ((IEnumerable<string>)_names).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => _names.GetEnumerator();
}
