using Peft.Training.Models;

namespace Peft.Training.Tuners;

public sealed partial class PeftModel
{
    private void RequireMergeable()
    {
        if (!Tuner.CanMerge) throw new PeftUserException($"{PeftType} adapters cannot be merged into the base weights");
    }

    /// <summary>Adds the active (or given) adapters into the base weights, keeping them (≈ <c>merge_adapter</c>).</summary>
    public void MergeAdapter(IReadOnlyList<string>? adapters = null, bool safeMerge = false)
    {
        RequireMergeable();
        Tuner.Merge(adapters ?? _active, safeMerge);
    }

    /// <summary>Undoes <see cref="MergeAdapter"/>.</summary>
    public void UnmergeAdapter() => Tuner.Unmerge();

    /// <summary>
    /// Merges the adapters into the base weights and removes every adapter layer; returns the plain base model,
    /// which this PeftModel no longer owns (≈ <c>merge_and_unload</c>).
    /// </summary>
    public PretrainedModel MergeAndUnload(IReadOnlyList<string>? adapters = null, bool safeMerge = false)
    {
        RequireMergeable();
        return Detach(merge: true, adapters, safeMerge);
    }

    /// <summary>Removes every adapter layer without merging and returns the original base model (≈ <c>unload</c>).</summary>
    public PretrainedModel Unload() => Detach(merge: false, null, false);

    private PretrainedModel Detach(bool merge, IReadOnlyList<string>? adapters, bool safe)
    {
        Tuner.Unload(merge, adapters ?? (merge ? _active : null), safe);
        foreach (var w in _modulesToSave.Values) w.Unload(keepActiveCopy: merge);
        _modulesToSave.Clear();
        _configs.Clear();
        _active.Clear();
        foreach (var (_, p) in BaseModel.named_parameters()) p.requires_grad = false;
        _detached = true;
        return BaseModel;
    }

    private bool _detached;
}
