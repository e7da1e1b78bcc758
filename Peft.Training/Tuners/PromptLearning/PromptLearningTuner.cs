using Peft.Training.Models;
using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.PromptLearning;

/// <summary>
/// Common model-level logic of the prompt-learning methods. Each adapter owns a <see cref="VirtualTokenEncoder"/>,
/// registered on the base model as <c>prompt_encoder.&lt;adapter&gt;</c> (PEFT's in-memory name), so parameter counts,
/// device moves and train/eval switches include it. Nothing in the base model is modified; the virtual tokens enter
/// through the forward arguments (prefix key/values or prepended embeddings), and only one adapter is active at a time.
/// </summary>
public abstract class PromptLearningTuner : ITuner
{
    public const string ContainerName = "prompt_encoder";

    private readonly ModuleMap<VirtualTokenEncoder> _encoders = new();
    private readonly Dictionary<string, PromptLearningConfig> _configs = new();
    private bool _registered;

    protected PromptLearningTuner(PeftModel owner) => Owner = owner;

    protected PeftModel Owner { get; }
    protected PretrainedModel Base => Owner.BaseModel;

    /// <summary>Human-readable method name for error messages ("prefix tuning").</summary>
    protected abstract string MethodName { get; }

    /// <summary>The active adapter, or null when none is active.</summary>
    public string? Active { get; private set; }

    public bool Disabled { get; set; }

    public bool CanMerge => false;

    public VirtualTokenEncoder Encoder(string adapter) => _encoders.TryGetValue(adapter, out var e) ? e
        : throw new ArgumentException($"adapter '{adapter}' not found");

    public PromptLearningConfig Config(string adapter) => _configs[adapter];

    /// <summary>True when the forward pass should apply the active adapter.</summary>
    protected bool IsApplied => !Disabled && Active is not null;

    public void AddAdapter(string name, PeftConfig config)
    {
        if (config is not PromptLearningConfig cfg)
            throw new PeftConfigException($"{MethodName}: unexpected config type {config.GetType().Name}");
        cfg.Validate();
        cfg.FillFromModel(Base.Shape);
        cfg.Validate();
        CheckModel(cfg);
        var encoder = CreateEncoder(cfg, Base.Device, Owner.Generator);
        if (!_registered)
        {
            Base.register_module(ContainerName, _encoders);
            _registered = true;
        }
        _encoders.Add(name, encoder);
        encoder.train(Base.training);
        _configs[name] = cfg;
    }

    /// <summary>Checks that the (filled) config fits the base model; throws <see cref="PeftConfigException"/> if not.</summary>
    protected abstract void CheckModel(PromptLearningConfig config);

    /// <summary>Builds and initialises the encoder (table only in inference mode).</summary>
    protected abstract VirtualTokenEncoder CreateEncoder(PromptLearningConfig config, Device device, Generator? gen);

    public void DeleteAdapter(string name)
    {
        _encoders.Remove(name);
        _configs.Remove(name);
        if (Active == name) Active = null;
    }

    public void SetActiveAdapters(IReadOnlyList<string> names)
    {
        // PEFT's prompt learning runs exactly one adapter per forward (its prompt defines the sequence layout).
        if (names.Count > 1)
            throw new ArgumentException($"{MethodName} supports one active adapter at a time, got [{string.Join(", ", names)}]");
        Active = names.Count == 1 ? names[0] : null;
    }

    public IEnumerable<AdapterTensor> AdapterTensors(string adapter)
    {
        yield return new AdapterTensor("prompt_embeddings", Encoder(adapter).SavedTensor());
    }

    /// <summary>The whole encoder trains (table and head), although only its output is saved.</summary>
    public IEnumerable<Parameter> TrainableParameters(string adapter) => Encoder(adapter).parameters();

    public abstract ModelOutput Forward(ForwardArgs args, IReadOnlyList<string>? rowAdapterNames);

    public void Merge(IReadOnlyList<string>? adapters, bool safe) =>
        throw new PeftUserException($"{MethodName} adapters cannot be merged into the base weights");

    public void Unmerge() =>
        throw new PeftUserException($"{MethodName} adapters cannot be merged into the base weights");

    public void Unload(bool merge, IReadOnlyList<string>? adapters, bool safe)
    {
        if (merge) Merge(adapters, safe);
        if (_registered) Base.register_module(ContainerName, null!);
        _registered = false;
        foreach (var name in _encoders.Keys.ToList()) _encoders.Remove(name);
        _configs.Clear();
        Active = null;
    }

    protected PromptLearningConfig ActiveConfig => _configs[Active!];

    protected VirtualTokenEncoder ActiveEncoder => _encoders[Active!];

    protected void RejectRowAdapters(IReadOnlyList<string>? rowAdapterNames)
    {
        if (rowAdapterNames is not null)
            throw new PeftUserException($"{MethodName} cannot mix adapters in one batch");
    }

    protected static (long Batch, long Length) Shape(ForwardArgs args)
    {
        var t = args.InputIds ?? args.InputsEmbeds ?? throw new ArgumentException("InputIds or InputsEmbeds is required");
        return (t.shape[0], t.shape[1]);
    }

    /// <summary>
    /// The attention mask must cover the virtual tokens too. Callers (trainer, generation) pass a mask over the real
    /// tokens only, as with Hugging Face, and the virtual ones get ones in front (PEFT's prefix_attention_mask); a mask
    /// that already covers them is used as is.
    /// </summary>
    protected static Tensor? WithVirtualMask(Tensor? mask, long totalLength, int numVirtual)
    {
        if (mask is null) return null;
        long cols = mask.shape[1];
        if (cols == totalLength) return mask;
        if (cols != totalLength - numVirtual)
            throw new ArgumentException(
                $"attention mask has {cols} columns; expected {totalLength - numVirtual} (real tokens, past included) or {totalLength} (with the {numVirtual} virtual tokens)");
        var ones = torch.ones([mask.shape[0], numVirtual], mask.dtype, mask.device);
        return torch.cat([ones, mask], 1);
    }

    /// <summary>
    /// Arguments for the base model. PEFT drops <c>position_ids</c> for prompt learning (the models then use
    /// past_length + index, which also shifts real tokens past a prefix) and drops <c>token_type_ids</c> for causal LMs.
    /// </summary>
    protected ForwardArgs BaseArgs(ForwardArgs args, Tensor? inputIds, Tensor? inputsEmbeds, Tensor? mask, KvCache? cache, Tensor? tokenTypeIds) => new()
    {
        InputIds = inputIds,
        InputsEmbeds = inputsEmbeds,
        AttentionMask = mask,
        PositionIds = null,
        Cache = cache,
        OutputHiddenStates = args.OutputHiddenStates,
        TokenTypeIds = Base.Task == TaskType.CausalLM ? null : tokenTypeIds,
        DecoderInputIds = args.DecoderInputIds,
        DecoderAttentionMask = args.DecoderAttentionMask,
        EncoderHiddenStates = args.EncoderHiddenStates,
        LogitsToKeep = args.LogitsToKeep,   // the last positions stay the last with virtual tokens in front
    };

    /// <summary>Moves an output created inside the caller's dispose scope one scope further out.</summary>
    protected static ModelOutput MoveOut(ModelOutput o)
    {
        o.Logits.MoveToOuterDisposeScope();
        o.LastHiddenState?.MoveToOuterDisposeScope();
        o.EncoderLastHiddenState?.MoveToOuterDisposeScope();
        if (o.HiddenStates is not null) foreach (var h in o.HiddenStates) h.MoveToOuterDisposeScope();
        return o;
    }
}
