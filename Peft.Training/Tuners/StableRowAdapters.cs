using System.Collections;

namespace Peft.Training.Tuners;

/// <summary>
/// One adapter name per batch row, for a caller that decodes the same rows step after step: layers may keep the per-row
/// tensors they gather (stacked LoRA factors, IA³ row scales) for as long as the same instance comes back. The caller
/// promises that while it passes this instance neither the rows nor any named adapter's weights or scaling change, and
/// makes a new instance when they do (the serving loop does on every join, leave, load and unload). A plain list is
/// never cached. <see cref="PeftModel.ReleaseRowCaches"/> frees what the layers hold.
/// </summary>
public sealed class StableRowAdapters(IReadOnlyList<string> names) : IReadOnlyList<string>
{
    private readonly string[] _names = names.ToArray();

    public string this[int index] => _names[index];
    public int Count => _names.Length;
    public IEnumerator<string> GetEnumerator() => ((IEnumerable<string>)_names).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => _names.GetEnumerator();
}
