using Peft.Training.Models;
using Peft.Training.Nn;

namespace Peft.Training.Tuners;

/// <summary>What every per-layer adapter (LoRA, IA³, AdaLoRA layers) offers its tuner.</summary>
public interface IAdapterLayer : ILayerTuner
{
    IEnumerable<string> Adapters { get; }
    List<string> ActiveAdapters { get; }
    bool Disabled { get; set; }
    bool Has(string adapter);
    void DeleteAdapter(string adapter);
    void Merge(IReadOnlyList<string>? adapters = null, bool safe = false);
    void Unmerge();
    /// <summary>Removes the adapter's containers from the host layer.</summary>
    void Detach();
}

/// <summary>
/// Shared machinery of the tuners that inject adapters into targeted layers (PEFT's <c>BaseTuner</c>): target
/// matching, attaching layers, activating, deleting, merging and unloading. Subclasses create the layers.
/// </summary>
public abstract class LayerTuner<TLayer, TConfig>(PeftModel owner) : ITuner
    where TLayer : class, IAdapterLayer
    where TConfig : PeftConfig
{
    protected readonly PeftModel _owner = owner;
    /// <summary>Module path (relative to the base model) → adapter layer, in model order.</summary>
    protected readonly List<(string Path, TLayer Layer)> _layers = new();
    protected readonly Dictionary<string, TConfig> _configs = new();

    protected PretrainedModel Base => _owner.BaseModel;

    /// <summary>"LoRA", "IA3" ... for messages.</summary>
    protected abstract string MethodName { get; }

    public IReadOnlyList<(string Path, TLayer Layer)> Layers => _layers;

    public abstract void AddAdapter(string name, PeftConfig config);

    public abstract IEnumerable<AdapterTensor> AdapterTensors(string adapter);

    /// <summary>
    /// The host layers an adapter targets. Containers matched by a regex are skipped (as PEFT skips non-leaf
    /// matches); a matched leaf the method cannot wrap, or no match at all, is an error.
    /// </summary>
    protected List<(string Path, THost Host)> MatchTargets<THost>(StringOrList targets, StringOrList? exclude,
        IReadOnlyList<int>? layersToTransform, StringOrList? layersPattern, IEnumerable<string>? modulesToSave, string supported)
        where THost : class, IAdaptableLayer
    {
        var matched = new List<(string, THost)>();
        foreach (var (path, module) in BaseModules.Of(Base))
        {
            if (TargetMatching.IsUnderModulesToSave(path, modulesToSave)) continue;
            if (!TargetMatching.IsTargeted(path, targets, exclude, layersToTransform, layersPattern)) continue;
            if (module is THost host) { matched.Add((path, host)); continue; }
            if (module.children().Any()) continue;
            throw new PeftConfigException($"Target module '{path}' ({module.GetType().Name}) is not supported. {MethodName} supports {supported}.");
        }
        if (matched.Count == 0)
            throw new PeftConfigException($"Target modules {targets} not found in the base model. Please check the target modules and try again.");
        return matched;
    }

    /// <summary>The host's existing layer of this method, or a new one registered under <paramref name="path"/>.</summary>
    protected TLayer LayerFor(string path, IAdaptableLayer host, Func<TLayer> create)
    {
        if (host.Tuner is TLayer existing) return existing;
        if (host.Tuner is not null) throw new PeftConfigException($"module '{path}' already carries an adapter of another type");
        var layer = create();
        _layers.Add((path, layer));
        return layer;
    }

    public virtual void DeleteAdapter(string name)
    {
        foreach (var (_, layer) in _layers) layer.DeleteAdapter(name);
        _configs.Remove(name);
        for (int i = _layers.Count - 1; i >= 0; i--)
        {
            if (_layers[i].Layer.Adapters.Any()) continue;
            _layers[i].Layer.Detach();
            _layers.RemoveAt(i);
        }
    }

    public void SetActiveAdapters(IReadOnlyList<string> names)
    {
        foreach (var (_, layer) in _layers)
        {
            layer.ActiveAdapters.Clear();
            layer.ActiveAdapters.AddRange(names.Where(layer.Has));
        }
    }

    public bool Disabled
    {
        get => _layers.Count > 0 && _layers[0].Layer.Disabled;
        set { foreach (var (_, l) in _layers) l.Disabled = value; }
    }

    public virtual bool CanMerge => true;

    /// <summary>Only LoRA mixes adapters within a batch (as in PEFT 0.10); the others refuse clearly.</summary>
    public virtual ModelOutput Forward(ForwardArgs args, IReadOnlyList<string>? rowAdapterNames)
    {
        if (rowAdapterNames is not null)
            throw new PeftUserException($"{MethodName} does not support mixed-batch inference (adapter_names); PEFT 0.10 implements it for LoRA only. Run one forward pass per adapter instead.");
        return Base.Forward(args);
    }

    public void Merge(IReadOnlyList<string>? adapters, bool safe)
    {
        // A weight shared with the input embeddings (tie_word_embeddings) would change both ends of the model; PEFT 0.10
        // merges silently and corrupts the embeddings, so refuse before touching any layer.
        var tied = _owner.BaseModel.TiedParameterNames;
        foreach (var (path, l) in _layers)
        {
            bool carriesMerged = (adapters ?? l.ActiveAdapters).Any(l.Has);
            if (carriesMerged && tied.Contains(path + ".weight"))
                throw new PeftUserException($"{MethodName} adapter on '{path}' cannot be merged: its weight is tied to the input embeddings (tie_word_embeddings), so merging would change both; serve the adapter unmerged instead");
        }
        foreach (var (_, l) in _layers) l.Merge(adapters ?? l.ActiveAdapters.ToList(), safe);
    }

    public void Unmerge()
    {
        foreach (var (_, l) in _layers) l.Unmerge();
    }

    public virtual void Unload(bool merge, IReadOnlyList<string>? adapters, bool safe)
    {
        if (merge) Merge(adapters, safe);
        foreach (var (_, l) in _layers) l.Detach();
        _layers.Clear();
        _configs.Clear();
    }

    /// <summary>bias="all": every bias of the model; "lora_only": biases of adapted layers (PEFT's key names).</summary>
    protected IEnumerable<AdapterTensor> BiasTensors(string bias)
    {
        if (bias == "none") yield break;
        var hosts = _layers.Select(l => l.Path).ToHashSet();
        foreach (var (name, p) in Base.UniqueNamedParameters())
        {
            if (!(name == "bias" || name.EndsWith(".bias", StringComparison.Ordinal)) || TargetMatching.IsAdapterInternal(name)) continue;
            string owner = name.Length > 5 ? name[..^5] : "";
            bool wrapped = hosts.Contains(owner);
            if (bias == "lora_only" && !wrapped) continue;
            yield return new("base_model.model." + (wrapped ? owner + ".base_layer.bias" : name), p);
        }
    }
}
