using System.Globalization;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners;

/// <summary>
/// A base model wrapped with one or more adapters of one PEFT method — the equivalent of PEFT's <c>PeftModel</c>
/// (<see cref="Create"/> ≈ <c>get_peft_model</c>, <see cref="FromPretrained"/> ≈ <c>PeftModel.from_pretrained</c>).
/// </summary>
public sealed partial class PeftModel : IDisposable
{
    public const string DefaultAdapterName = "default";

    private readonly Dictionary<string, PeftConfig> _configs = new();
    private readonly Dictionary<string, ModulesToSaveLayer> _modulesToSave = new();
    private readonly List<string> _active = new();

    private PeftModel(PretrainedModel baseModel, string peftType, long? seed)
    {
        BaseModel = baseModel;
        PeftType = peftType;
        Generator = seed is long s ? new Generator((ulong)s, baseModel.Device) : null;
        Tuner = PeftMethods.Get(peftType).CreateTuner(this);
    }

    public PretrainedModel BaseModel { get; }
    public string PeftType { get; }
    public ITuner Tuner { get; }
    /// <summary>RNG for adapter initialisation (null = torch's global generator).</summary>
    public Generator? Generator { get; }
    public IReadOnlyDictionary<string, PeftConfig> Configs => _configs;
    public IReadOnlyList<string> ActiveAdapters => _active;
    public string ActiveAdapter => _active.Count > 0 ? _active[0] : throw new InvalidOperationException("no active adapter");
    public PeftConfig ActiveConfig => _configs[ActiveAdapter];

    /// <summary>
    /// Wraps <paramref name="model"/> with a new adapter (≈ <c>get_peft_model</c>). The base weights are frozen.
    /// <paramref name="config"/> is copied: the caller's object is never changed (one config may serve many models).
    /// </summary>
    public static PeftModel Create(PretrainedModel model, PeftConfig config, string adapterName = DefaultAdapterName, long? seed = null)
    {
        config = config.Clone();
        var peft = new PeftModel(model, config.PeftType, seed);
        config.BaseModelNameOrPath ??= model.NameOrPath;
        // Prompt learning needs an explicit task_type (PEFT picks the wrapper from it); other methods default to the head.
        if (!config.IsPromptLearning) config.TaskType ??= model.Task;
        peft.AddAdapter(adapterName, config);
        peft.SetAdapter(adapterName);
        return peft;
    }

    /// <summary>Loads a saved adapter folder onto <paramref name="model"/> (≈ <c>PeftModel.from_pretrained</c>).</summary>
    public static PeftModel FromPretrained(PretrainedModel model, string adapterDir, string adapterName = DefaultAdapterName, bool isTrainable = false)
    {
        var config = PeftConfigs.Load(adapterDir);
        var peft = new PeftModel(model, config.PeftType, null);
        peft.LoadAdapter(adapterDir, adapterName, isTrainable);
        peft.SetAdapter(adapterName);
        return peft;
    }

    /// <summary>Adds an adapter without activating it (≈ <c>add_adapter</c>). Works on a copy of <paramref name="config"/>.</summary>
    public void AddAdapter(string name, PeftConfig config)
    {
        // Tuners resolve targets (all-linear, family defaults) and heads into the config they keep: never the caller's.
        config = config.Clone();
        if (string.IsNullOrWhiteSpace(name) || name.Contains('.')) throw new ArgumentException($"invalid adapter name '{name}'");
        if (_configs.ContainsKey(name)) throw new ArgumentException($"adapter '{name}' already exists");
        if (config.PeftType != PeftType && !(MixesIa3Rows && config is Ia3Config))
            throw new PeftConfigException($"cannot combine adapters of different types ({PeftType} and {config.PeftType}) in one model");
        config.Validate();
        config.TaskType ??= BaseModel.Task;
        config.TaskModulesToSave = TaskHeadsOf(config.TaskType);
        using var noGrad = torch.no_grad();
        Tuner.AddAdapter(name, config);
        try
        {
            AddModulesToSave(name, config);
        }
        catch
        {
            Tuner.DeleteAdapter(name);
            throw;
        }
        _configs[name] = config;
        // A serving model never trains, so only the new tensors need freezing; the full walk over every parameter
        // of every attached adapter cost a server holding a hundred ~10 ms per attach.
        if (ServingOnly) foreach (var t in AdapterTensors(name)) t.Parameter.requires_grad = false;
        else UpdateTrainable();
    }

    /// <summary>
    /// The heads PEFT's task wrappers (PeftModelForSequenceClassification ...) train and save in full, limited to those
    /// the base model has (PEFT only wraps modules it finds).
    /// </summary>
    private List<string> TaskHeadsOf(TaskType? task)
    {
        var heads = TaskHeads.ModuleNames(task);
        if (heads.Count == 0) return [];
        var paths = BaseModules.Of(BaseModel).Select(m => m.Path).ToList();
        return heads.Where(h => paths.Any(p => TargetMatching.MatchesList([h], p))).ToList();
    }

    private void AddModulesToSave(string adapter, PeftConfig config)
    {
        if (config.EffectiveModulesToSave is not { Count: > 0 } names) return;
        bool any = false;
        foreach (var (path, module) in BaseModules.Of(BaseModel))
        {
            if (!TargetMatching.MatchesList(names, path)) continue;
            var leaves = module is IAdaptableLayer single
                ? [(path, single)]
                : module.named_modules().Where(m => m.module is IAdaptableLayer && !TargetMatching.IsAdapterInternal(m.name))
                    .Select(m => ($"{path}.{m.name}", (IAdaptableLayer)m.module)).ToList();
            foreach (var (leafPath, leaf) in leaves)
            {
                if (!_modulesToSave.TryGetValue(leafPath, out var wrapper))
                {
                    wrapper = new ModulesToSaveLayer(leaf);
                    _modulesToSave[leafPath] = wrapper;
                }
                wrapper.AddAdapter(adapter);
                any = true;
            }
        }
        if (!any) throw new PeftConfigException($"modules_to_save: none of [{string.Join(", ", names)}] was found in the base model");
    }

    /// <summary>Makes one adapter active (and trainable unless its config is in inference mode).</summary>
    public void SetAdapter(string name) => SetAdapters([name]);

    /// <summary>Activates several adapters at once; their outputs are summed (LoRA).</summary>
    public void SetAdapters(IReadOnlyList<string> names)
    {
        foreach (var n in names)
            if (!_configs.ContainsKey(n)) throw new ArgumentException($"adapter '{n}' not found (available: {string.Join(", ", _configs.Keys)})");
        // The tuner may refuse the set (prompt learning runs one adapter), so ask it before changing our state.
        Tuner.SetActiveAdapters(names);
        _active.Clear();
        _active.AddRange(names);
        foreach (var w in _modulesToSave.Values) w.Active = names.FirstOrDefault(n => w.Adapters.Contains(n));
        UpdateTrainable();
    }

    /// <summary>Removes an adapter; if it was active the first remaining one (alphabetically) becomes active.</summary>
    public void DeleteAdapter(string name)
    {
        if (!_configs.Remove(name)) throw new ArgumentException($"adapter '{name}' not found");
        Tuner.DeleteAdapter(name);
        foreach (var w in _modulesToSave.Values) w.Delete(name);
        _active.Remove(name);
        if (_active.Count == 0 && _configs.Count > 0) _active.Add(_configs.Keys.Order(StringComparer.Ordinal).First());
        Tuner.SetActiveAdapters(_active);
        foreach (var w in _modulesToSave.Values) w.Active = _active.FirstOrDefault(n => w.Adapters.Contains(n));
        if (!ServingOnly) UpdateTrainable();   // a serving model's tensors are all frozen already (see AddAdapter)
    }

    /// <summary>Turns every adapter off until the returned scope is disposed (≈ <c>with model.disable_adapter()</c>).</summary>
    public IDisposable DisableAdapters()
    {
        Tuner.Disabled = true;
        foreach (var w in _modulesToSave.Values) w.Disabled = true;
        return new Scope(() =>
        {
            Tuner.Disabled = false;
            foreach (var w in _modulesToSave.Values) w.Disabled = false;
        });
    }

    private IReadOnlyList<string>? _rowAdapterNames;

    /// <summary>Forward pass. <paramref name="adapterNames"/> gives one adapter per batch row (<c>"__base__"</c> = none).</summary>
    public ModelOutput Forward(ForwardArgs args, IReadOnlyList<string>? adapterNames = null)
    {
        if (adapterNames is null) return Tuner.Forward(args, null);
        var outer = _rowAdapterNames;   // a forward inside another one (see LoraTuner.Forward) restores the outer rows
        _rowAdapterNames = adapterNames;
        foreach (var w in _modulesToSave.Values) w.RowAdapterNames = adapterNames;
        try { return Tuner.Forward(args, adapterNames); }
        finally
        {
            _rowAdapterNames = outer;
            foreach (var w in _modulesToSave.Values) w.RowAdapterNames = outer;
        }
    }

    /// <summary>
    /// Frees what layers keep for <see cref="StableRowAdapters"/> batches: the rows' gathered tensors and the pooled
    /// adapter slots they are gathered from (call when the batch ends).
    /// </summary>
    public void ReleaseRowCaches()
    {
        if (Tuner is not Lora.LoraTuner lora) return;
        foreach (var (_, l) in lora.Layers)
        {
            l.ReleaseRowCache();
            l.DropRowPool();
        }
    }

    /// <summary>Freezes the base; the active adapter's tensors (and bias/modules_to_save per config) become trainable.</summary>
    private void UpdateTrainable()
    {
        foreach (var (_, p) in BaseModel.named_parameters()) p.requires_grad = false;
        if (_active.Count == 0) return;
        string active = _active[0];
        var cfg = _configs[active];
        if (cfg.InferenceMode) return;
        foreach (var p in Tuner.TrainableParameters(active)) p.requires_grad = true;
        foreach (var w in _modulesToSave.Values)
            foreach (var (_, p) in w.Parameters(active)) p.requires_grad = true;
    }

    /// <summary>Every tensor saved for an adapter (method tensors + modules_to_save copies), with checkpoint keys.</summary>
    public IEnumerable<AdapterTensor> AdapterTensors(string adapter)
    {
        foreach (var t in Tuner.AdapterTensors(adapter)) yield return t;
        // Prompt learning has no tuner wrapper between PeftModel and the base model, hence PEFT's shorter prefix.
        string prefix = _configs.TryGetValue(adapter, out var cfg) && cfg.IsPromptLearning ? "base_model." : "base_model.model.";
        foreach (var (path, w) in _modulesToSave)
            foreach (var (suffix, p) in w.Parameters(adapter))
                yield return new($"{prefix}{path}.{suffix}", p);
    }

    /// <summary>(trainable, all) parameter counts with PEFT's semantics (shared tensors once, frozen originals included).</summary>
    public (long Trainable, long All) GetNbTrainableParameters()
    {
        long trainable = 0, all = 0;
        foreach (var (_, p) in BaseModel.UniqueNamedParameters())
        {
            // PEFT counts a packed 4-bit weight (uint8, two values a byte) as its logical size.
            long n = p.dtype == ScalarType.Byte ? p.numel() * 2 : p.numel();
            all += n;
            if (p.requires_grad) trainable += n;
        }
        return (trainable, all);
    }

    /// <summary><c>trainable params: 1,126,400 || all params: 1,101,174,784 || trainable%: 0.1023</c></summary>
    public string TrainableParametersSummary()
    {
        var (t, a) = GetNbTrainableParameters();
        return FormatSummary(t, a);
    }

    public static string FormatSummary(long trainable, long all) => string.Create(CultureInfo.InvariantCulture,
        $"trainable params: {trainable:N0} || all params: {all:N0} || trainable%: {100.0 * trainable / all:F4}");

    /// <summary>Prints <see cref="TrainableParametersSummary"/> to standard output (≈ <c>print_trainable_parameters()</c>).</summary>
    public void PrintTrainableParameters() => Console.WriteLine(TrainableParametersSummary());

    public void Dispose()
    {
        Generator?.Dispose();
        if (!_detached) BaseModel.Dispose();
    }

    private sealed class Scope(Action onDispose) : IDisposable
    {
        private Action? _onDispose = onDispose;
        public void Dispose() { _onDispose?.Invoke(); _onDispose = null; }
    }
}
