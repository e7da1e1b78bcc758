using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.Lora;

/// <summary>Per-adapter hyper-parameters of one LoRA layer.</summary>
public sealed record LoraAdapterSettings(int R, double Alpha, double Dropout, bool UseRslora, bool UseDora, bool LoraBias)
{
    /// <summary>alpha / r, or alpha / √r with rsLoRA.</summary>
    public double Scaling { get; set; } = UseRslora ? Alpha / Math.Sqrt(R) : Alpha / R;
}

/// <summary>
/// LoRA on one Linear / GPT-2 Conv1D / Embedding layer: y = base(x) + s·B(A(dropout(x))) for each active adapter.
/// Parameters live on the host layer under PEFT's names: <c>lora_A.{adapter}.weight</c> [r, in],
/// <c>lora_B.{adapter}.weight</c> [out, r], <c>lora_embedding_A.{adapter}</c> [r, vocab],
/// <c>lora_embedding_B.{adapter}</c> [dim, r], <c>lora_magnitude_vector.{adapter}</c> [out] (DoRA).
/// </summary>
public sealed partial class LoraLayer : IAdapterLayer
{
    public const string BaseRowName = "__base__";

    private readonly LinearLayer? _linear;
    private readonly EmbeddingLayer? _embedding;
    private readonly ModuleMap<LinearLayer>? _loraA, _loraB;
    private readonly ParameterDict? _embA, _embB;
    private ParameterDict? _magnitude;
    private readonly Dictionary<string, LoraAdapterSettings> _settings = new();
    private readonly Dictionary<string, Tensor> _doraMergeFactors = new();

    private readonly DropoutSource _random;

    /// <param name="random">The model's dropout generator (<see cref="Models.PretrainedModel.Dropout"/>).</param>
    public LoraLayer(IAdaptableLayer host, DropoutSource random)
    {
        Host = host;
        _random = random;
        var module = host.AsModule;
        switch (host)
        {
            case LinearLayer lin:
                _linear = lin;
                _loraA = new ModuleMap<LinearLayer>();
                _loraB = new ModuleMap<LinearLayer>();
                module.register_module("lora_A", _loraA);
                module.register_module("lora_B", _loraB);
                break;
            case EmbeddingLayer emb:
                _embedding = emb;
                _embA = new ParameterDict();
                _embB = new ParameterDict();
                module.register_module("lora_embedding_A", _embA);
                module.register_module("lora_embedding_B", _embB);
                break;
            default:
                throw new PeftUserException($"LoRA does not support {host.GetType().Name}");
        }
        host.Tuner = this;
    }

    public IAdaptableLayer Host { get; }
    public bool IsEmbedding => _embedding is not null;
    public IReadOnlyDictionary<string, LoraAdapterSettings> Settings => _settings;
    public IEnumerable<string> Adapters => _settings.Keys.Concat(_ia3Rows.Keys);
    public List<string> ActiveAdapters { get; } = new();
    public List<string> MergedAdapters { get; } = new();
    public bool Merged => MergedAdapters.Count > 0;
    public bool Disabled { get; set; }
    /// <summary>Mixed-batch inference: one adapter name per batch row (<see cref="BaseRowName"/> = none), set per forward.</summary>
    public IReadOnlyList<string>? RowAdapterNames { get; set; }

    private long InFeatures => _linear?.InFeatures ?? _embedding!.NumEmbeddings;
    private long OutFeatures => _linear?.OutFeatures ?? _embedding!.EmbeddingDim;
    private Tensor BaseWeight => Host.weight;

    public bool Has(string adapter) => _settings.ContainsKey(adapter);

    /// <summary>The A and B matrices of an adapter as [r, in] and [out, r] (embedding tables are stored that way too).</summary>
    public (Tensor A, Tensor B) Factors(string adapter) => _linear is not null
        ? (_loraA![adapter].weight, _loraB![adapter].weight)
        : (_embA![adapter], _embB![adapter]);

    internal Parameter? LoraBBias(string adapter) => _linear is not null ? _loraB![adapter].bias : null;

    public Parameter? Magnitude(string adapter) => _magnitude is not null && _magnitude.TryGetValue(adapter, out var m) ? m : null;

    public IEnumerable<Parameter> AdapterParameters(string adapter)
    {
        var (a, b) = Factors(adapter);
        yield return (Parameter)a;
        yield return (Parameter)b;
        if (_linear is not null && _loraB![adapter].bias is { } bias) yield return bias;
        if (Magnitude(adapter) is { } m) yield return m;
    }

    public void AddAdapter(string name, LoraAdapterSettings settings, string initMode, Generator? generator)
    {
        if (_settings.ContainsKey(name)) throw new InvalidOperationException($"adapter '{name}' already exists on this layer");
        if (settings.R <= 0) throw new ArgumentException($"LoRA rank must be positive, got {settings.R}");
        if (settings.UseDora && IsEmbedding) throw new PeftUserException("DoRA on embedding layers is not supported");
        ReleaseRowCache();
        ForgetPooled(name);
        var device = BaseWeight.device;
        var dtype = ScalarType.Float32; // adapters are kept in float32 (PEFT autocasts half-precision adapters up)
        using var noGrad = torch.no_grad();
        if (_linear is not null)
        {
            var a = new LinearLayer(InFeatures, settings.R, false, device, dtype);
            var b = new LinearLayer(settings.R, OutFeatures, settings.LoraBias, device, dtype);
            _loraA!.Add(name, a);
            _loraB!.Add(name, b);
        }
        else
        {
            _embA!.Add(name, new Parameter(torch.zeros([settings.R, InFeatures], dtype, device)));
            _embB!.Add(name, new Parameter(torch.zeros([OutFeatures, settings.R], dtype, device)));
        }
        _settings[name] = settings;
        LoraInit.Initialise(this, name, initMode, generator);
        if (settings.UseDora)
        {
            if (_magnitude is null)
            {
                _magnitude = new ParameterDict();
                Host.AsModule.register_module("lora_magnitude_vector", _magnitude);
            }
            _magnitude.Add(name, new Parameter(WeightNorm(name).to(dtype)));
        }
    }

    public void DeleteAdapter(string name)
    {
        if (MergedAdapters.Contains(name)) throw new InvalidOperationException($"adapter '{name}' is merged; unmerge it before deleting");
        if (RemoveIa3(name) || !_settings.Remove(name)) return;
        ReleaseRowCache();
        ForgetPooled(name);
        if (_linear is not null) { _loraA!.Remove(name); _loraB!.Remove(name); }
        else { RemoveAndDispose(_embA!, name); RemoveAndDispose(_embB!, name); }
        if (_magnitude is not null) RemoveAndDispose(_magnitude, name);
        ActiveAdapters.Remove(name);
    }

    /// <summary>Native memory goes back now, not when a finalizer happens to run (a server loads and drops many adapters).</summary>
    private static void RemoveAndDispose(ParameterDict dict, string name)
    {
        if (!dict.TryGetValue(name, out var p)) return;
        dict.Remove(name);
        p.Dispose();
    }

    /// <summary>Removes every LoRA container from the host (after merge_and_unload / unload).</summary>
    public void Detach()
    {
        var m = Host.AsModule;
        foreach (var n in new[] { "lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector" })
            m.register_module(n, null!);
        Host.Tuner = null;
        ReleaseRowCache();
        DropRowPool();
        DisposeIa3();
        // Unregistered containers are ours alone now: free their tensors instead of leaving them to finalizers.
        _loraA?.Dispose();
        _loraB?.Dispose();
        _embA?.Dispose();
        _embB?.Dispose();
        _magnitude?.Dispose();
        foreach (var f in _doraMergeFactors.Values) f.Dispose();
        _doraMergeFactors.Clear();
    }

    private Tensor Dropout(string adapter, Tensor x)
    {
        double p = _settings[adapter].Dropout;
        return _random.Apply(x, p, Host.AsModule.training);
    }

    public Tensor Forward(Tensor x)
    {
        if (Disabled)
        {
            if (Merged) Unmerge();
            return Host.BaseForward(x);
        }
        if (RowAdapterNames is not null) return MixedBatchForward(x, RowAdapterNames);
        if (Merged) return Host.BaseForward(x);
        using var scope = torch.NewDisposeScope();
        var result = Host.BaseForward(x);
        var outDtype = result.dtype;
        foreach (var name in ActiveAdapters)
        {
            if (!_settings.TryGetValue(name, out var s)) continue;
            if (_linear is not null)
            {
                var xa = x.to(ScalarType.Float32);
                if (s.UseDora) result = result + DoraDelta(name, Dropout(name, xa)).to(outDtype);
                else
                {
                    using Scalar scaling = s.Scaling;   // held past the native call: an implicit temporary can be finalized mid-call
                    result = result + (_loraB![name].forward(_loraA![name].forward(Dropout(name, xa))) * scaling).to(outDtype);
                }
            }
            else
            {
                result = result + EmbeddingDelta(name, x).to(outDtype);
            }
        }
        return result.MoveToOuterDisposeScope();
    }

    private Tensor EmbeddingDelta(string name, Tensor ids)
    {
        var afterA = EmbeddingLayer.Lookup(_embA![name].t(), ids);
        using Scalar scaling = _settings[name].Scaling;
        return afterA.matmul(_embB![name].t()) * scaling;
    }

    /// <summary>Each row gets its own adapter; rows naming an adapter this layer lacks get the base output.</summary>
    private Tensor MixedBatchForward(Tensor x, IReadOnlyList<string> rows)
    {
        if (Merged) throw new InvalidOperationException("mixed-batch inference (adapter_names) cannot be used while adapters are merged");
        if (x.shape[0] != rows.Count)
            throw new ArgumentException($"adapter_names has {rows.Count} entries but the batch has {x.shape[0]} rows");
        using var scope = torch.NewDisposeScope();
        // IA³ rows: input scaling before the shared base product, output scaling after it (1 for every other row).
        var inScale = Ia3RowScales(rows, true, InFeatures, x);
        var result = Host.BaseForward(inScale is null ? x : ScaleRows(x, inScale));
        var outDtype = result.dtype;
        var outScale = Ia3RowScales(rows, false, OutFeatures, result);
        if (outScale is not null) result = ScaleRows(result, outScale);
        var distinct = rows.Distinct().ToList();
        if (distinct.Count == 1 && _linear is not null && _settings.TryGetValue(distinct[0], out var only) && !only.UseDora
            && Factors(distinct[0]) is var (a, b) && x.dtype == a.dtype && result.dtype == a.dtype
            && _loraB![distinct[0]].bias is null && !Host.AsModule.training)
        {
            // Every row on one adapter (a popular adapter's batch): base + x·Aᵀ·Bᵀ·s in one op, no gather or scatter.
            var xa = nn.functional.linear(x.reshape(-1, InFeatures), a);   // [tokens, r]
            return result.reshape(-1, OutFeatures).addmm(xa, b.t(), 1, (float)only.Scaling).view(result.shape).MoveToOuterDisposeScope();
        }
        // Plain LoRA rows gathered (or looped); DoRA rows after that, each adapter on its own rows: DoRA's column norm
        // makes its delta depend on the base product as well (PEFT itself refuses adapter_names with DoRA).
        var gathered = GatheredForward(x, result, rows);
        if (gathered is not null) result = gathered;
        using Scalar one = 1;
        foreach (var name in distinct)
        {
            if (name == BaseRowName || !_settings.TryGetValue(name, out var s) || (gathered is not null && !s.UseDora)) continue;
            var idx = torch.tensor(rows.Select((n, i) => (n, i)).Where(t => t.n == name).Select(t => (long)t.i).ToArray(), device: x.device);
            var sub = x.index_select(0, idx);
            using Scalar scaling = s.Scaling;
            Tensor delta = _linear is null ? EmbeddingDelta(name, sub)
                : s.UseDora ? DoraDelta(name, Dropout(name, sub.to(ScalarType.Float32)))
                : _loraB![name].forward(_loraA![name].forward(Dropout(name, sub.to(ScalarType.Float32)))) * scaling;
            result = result.index_add(0, idx, delta.to(outDtype), one);
        }
        return result.MoveToOuterDisposeScope();
    }
}
