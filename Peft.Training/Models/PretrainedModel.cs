using Peft.Training.IO;
using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Models;

/// <summary>
/// Root of every model family (the equivalent of a transformers <c>...ForCausalLM</c> etc.). Parameter names are
/// the Hugging Face state-dict keys, so checkpoints load by name and adapters address modules by HF paths.
/// </summary>
public abstract class PretrainedModel : nn.Module
{
    protected PretrainedModel(string name, ModelConfig config, TaskType task, Device device, ScalarType dtype) : base(name)
    {
        Config = config;
        Task = task;
        Device = device;
        DType = dtype;
    }

    public ModelConfig Config { get; }
    public TaskType Task { get; }

    public Device Device { get; private set; }
    public ScalarType DType { get; private set; }
    public string ModelType => Config.ModelType;

    /// <summary>Path or hub id the model came from (recorded as <c>base_model_name_or_path</c>).</summary>
    public string NameOrPath { get; set; } = "";

    public abstract int NumLayers { get; }
    /// <summary>Layers of the decoder stack (the self-attention <see cref="KvCache"/> size); encoder-decoders may differ.</summary>
    public virtual int NumDecoderLayers => NumLayers;
    public abstract int HiddenSize { get; }
    public abstract int NumAttentionHeads { get; }
    public abstract int NumKeyValueHeads { get; }
    public virtual int HeadDim => HiddenSize / NumAttentionHeads;
    public abstract int VocabSize { get; }

    /// <summary>The dimensions adapter configs are completed and checked against.</summary>
    public ModelShape Shape => new(Task, NumLayers, HiddenSize, NumAttentionHeads, NumKeyValueHeads, Config);
    public virtual bool IsEncoderDecoder => false;

    /// <summary>The word-embedding table (prompt tuning reads it, LoRA can target it).</summary>
    public abstract EmbeddingLayer InputEmbeddings { get; }

    /// <summary>Module path of the output embedding / LM head (excluded from "all-linear"), if any.</summary>
    public virtual string? OutputEmbeddingName => Task == TaskType.CausalLM || Task == TaskType.Seq2SeqLM ? "lm_head" : null;

    /// <summary>Names of parameters that are aliases of another parameter (tied), omitted when saving.</summary>
    public virtual IReadOnlyCollection<string> TiedParameterNames => Array.Empty<string>();

    /// <summary>Parameter names a checkpoint may lack without error (e.g. tied heads); all tied names by default.</summary>
    protected virtual bool IsOptionalInCheckpoint(string name) => TiedParameterNames.Contains(name);

    public abstract ModelOutput Forward(ForwardArgs args);

    /// <summary>
    /// Recompute each decoder layer in backward instead of keeping its activations (transformers'
    /// <c>gradient_checkpointing_enable()</c>). Only applies while grad is enabled and no KV cache is used.
    /// </summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>
    /// The source of every dropout mask of this model (the family's configured dropout in training mode; off in eval
    /// and generation). Its <see cref="DropoutSource.Generator"/> is null by default (the global RNG); a training run
    /// sets its own generator there.
    /// </summary>
    public DropoutSource Dropout { get; } = new();

    /// <summary>
    /// Called before each decoder layer of a forward pass: the serving loop prefills a request that arrived while the
    /// running batch's step is under way, instead of making it wait for the whole step. The callee may run other forward
    /// passes of this model (they do not call it again) and must leave every adapter state as it found it.
    /// </summary>
    internal Action? BeforeDecoderLayer { get; set; }

    /// <summary>Runs one decoder layer, checkpointed when <see cref="GradientCheckpointing"/> is on (the shared hook of every family).</summary>
    protected Tensor RunDecoderLayer(nn.Module layer, Tensor hidden, IReadOnlyList<Tensor> constants, GradientCheckpoint.Block run, bool usesCache)
    {
        if (BeforeDecoderLayer is { } before)
        {
            BeforeDecoderLayer = null;
            try { before(); }
            finally { BeforeDecoderLayer = before; }
        }
        if (!GradientCheckpointing || usesCache || !torch.is_grad_enabled()) return run(hidden, constants);
        var trainable = layer.parameters().Where(p => p.requires_grad).ToList();
        // Nothing inside or before the layer needs a gradient: a plain no-graph forward is all checkpointing would do.
        if (trainable.Count == 0 && !hidden.requires_grad) return run(hidden, constants);
        return GradientCheckpoint.Run(run, hidden, constants, trainable, Dropout);
    }

    /// <summary>Parameters by HF name, each tensor once (tied aliases dropped), in registration order.</summary>
    public IEnumerable<(string Name, Parameter Param)> UniqueNamedParameters()
    {
        var seen = new HashSet<IntPtr>();
        foreach (var (name, p) in named_parameters())
            if (seen.Add(p.Handle)) yield return (name, p);
    }

    /// <summary>
    /// Copies every parameter from a checkpoint (cast to the parameter's dtype/device). <paramref name="custom"/>
    /// (name, checkpoint key, parameter) may take over a parameter, e.g. to quantise it, by returning true.
    /// </summary>
    public void LoadWeights(CheckpointReader reader, string source, Func<string, string, Parameter, bool>? custom = null)
    {
        using var noGrad = torch.no_grad();
        var loaded = new HashSet<IntPtr>();
        var fresh = new List<string>();
        foreach (var (name, p) in named_parameters().ToList())
        {
            if (loaded.Contains(p.Handle)) continue;
            string key = CheckpointKey(name);
            if (!reader.Contains(key) && AlternateCheckpointKey(name) is { } alt && reader.Contains(alt)) key = alt;
            if (!reader.Contains(key))
            {
                if (IsOptionalInCheckpoint(name))
                {
                    if (!TiedParameterNames.Contains(name)) fresh.Add(name);
                    continue;
                }
                throw new ModelLoadException($"{source}: weight '{key}' is missing from the checkpoint");
            }
            if (custom is not null && custom(name, key, p)) continue;
            var entry = reader.Entry(key);
            if (!entry.Shape.SequenceEqual(p.shape))
                throw new ModelLoadException(
                    $"{source}: weight '{key}' has shape [{string.Join(", ", entry.Shape)}] but the model expects [{string.Join(", ", p.shape)}]");
            using var t = reader.Load(key, p.device, p.dtype);
            p.copy_(t);
            loaded.Add(p.Handle);
        }
        NewlyInitializedWeights = fresh;
        if (fresh.Count > 0) InitParameters(fresh.ToHashSet(), seed: 0);
    }

    /// <summary>
    /// Weights the checkpoint lacked and that were initialised instead, as transformers does for a new head
    /// (e.g. <c>classifier.weight</c> when a classifier is built on a bare encoder checkpoint).
    /// </summary>
    public IReadOnlyList<string> NewlyInitializedWeights { get; private set; } = [];

    /// <summary>Maps an in-memory parameter name to its checkpoint key (identity unless a family needs otherwise).</summary>
    protected virtual string CheckpointKey(string parameterName) => parameterName;

    /// <summary>
    /// Second key tried when <see cref="CheckpointKey"/> is absent: transformers loads a bare base-model checkpoint
    /// into a model with a head (and the reverse) by adding or stripping the base-model prefix (<c>bert.</c> ...).
    /// </summary>
    protected virtual string? AlternateCheckpointKey(string parameterName) => null;

    /// <summary>
    /// Random initialisation like transformers' <c>_init_weights</c>: linear/embedding weights ~ N(0, initializer_range),
    /// biases 0, norm weights 1. Used when building a model from config for (pre)training.
    /// </summary>
    public virtual void InitWeights(long seed) => InitParameters(null, seed);

    /// <summary>Initialises the parameters named in <paramref name="only"/> (null = all of them).</summary>
    private void InitParameters(IReadOnlySet<string>? only, long seed)
    {
        using var noGrad = torch.no_grad();
        using var gen = new Generator((ulong)seed, Device);
        double std = Config.TryGetDouble("initializer_range", "init_std") ?? 0.02;
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar one = 1;
        foreach (var (path, module) in named_modules())
        {
            bool Want(string param) => only is null || only.Contains(path.Length == 0 ? param : $"{path}.{param}");
            switch (module)
            {
                case LinearLayer lin:
                    if (Want("weight")) lin.weight.normal_(0, std, gen);
                    if (Want("bias")) lin.bias?.zero_();
                    break;
                case EmbeddingLayer emb when Want("weight"):
                    emb.weight.normal_(0, std, gen);
                    if (emb.PaddingIdx is long pad) emb.weight[pad].zero_();
                    break;
                case RmsNorm rms when Want("weight"):
                    rms.weight.fill_(one);
                    break;
                case LayerNormLayer ln:
                    if (Want("weight")) ln.weight.fill_(one);
                    if (Want("bias")) ln.bias?.zero_();
                    break;
            }
        }
    }

    /// <summary>Saves the model as an HF folder: config.json + model.safetensors (tied aliases omitted).</summary>
    public void SavePretrained(string dir, ScalarType? dtype = null)
    {
        Directory.CreateDirectory(dir);
        var tied = TiedParameterNames;
        var tensors = new List<KeyValuePair<string, Tensor>>();
        var quantised = Quantization.QuantizedLoading.QuantisedLayers(this);
        foreach (var (name, p) in UniqueNamedParameters())
        {
            if (tied.Contains(name)) continue;
            if (name.EndsWith(".weight", StringComparison.Ordinal) && quantised.TryGetValue(name[..^7], out var ql))
            {
                // bitsandbytes' layout: packed weight plus its quantisation state tensors.
                tensors.AddRange(Quantization.BnbLayout.StateTensors(CheckpointKey(name)[..^6], ql.Quantized!));
                continue;
            }
            Tensor t = p.detach();
            if (dtype is { } d && t.dtype != d) t = t.to(d);
            tensors.Add(new(CheckpointKey(name), t));
        }
        Safetensors.Save(Path.Combine(dir, "model.safetensors"), tensors);
        foreach (var kv in tensors) kv.Value.Dispose();
        var cfg = Config.Clone();
        if (dtype is { } dd) cfg.Json["torch_dtype"] = DTypes.ToHfName(dd);
        cfg.Save(Path.Combine(dir, "config.json"));
    }

    /// <summary>Moves the model to a device (keeps <see cref="Device"/> in sync so new tensors land there too).</summary>
    public void MoveTo(Device device)
    {
        this.to(device);
        Device = device;
    }
}

/// <summary>A model folder that cannot be loaded (missing or mismatched weights, unsupported layout).</summary>
public sealed class ModelLoadException(string message, UserErrorKind kind = UserErrorKind.Invalid) : PeftUserException(message, kind);

public static class DTypes
{
    public static ScalarType FromHfName(string? name) => name switch
    {
        null or "float32" or "float" => ScalarType.Float32,
        "bfloat16" => ScalarType.BFloat16,
        "float16" or "half" => ScalarType.Float16,
        "float64" => ScalarType.Float64,
        _ => throw new PeftUserException($"unsupported dtype '{name}' (expected float32, bfloat16 or float16)"),
    };

    public static string ToHfName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float64 => "float64",
        _ => throw new ArgumentException($"unsupported dtype {t}"),
    };
}
