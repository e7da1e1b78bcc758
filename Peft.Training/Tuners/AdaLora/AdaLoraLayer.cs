using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.AdaLora;

/// <summary>
/// AdaLoRA (SVD-form LoRA) on one Linear / GPT-2 Conv1D layer: y = base(x) + (x·(A⊙E)ᵀ·Bᵀ)·scaling / (ranknum + 1e-5).
/// Parameters on the host under PEFT's names: <c>lora_A.{adapter}</c> [r, in], <c>lora_E.{adapter}</c> [r, 1],
/// <c>lora_B.{adapter}</c> [out, r] and the frozen <c>ranknum.{adapter}</c> [1] (the initial rank, which keeps the
/// scale fixed when ranks are pruned).
/// </summary>
public sealed class AdaLoraLayer : IAdapterLayer
{
    private static readonly string[] Containers = ["lora_A", "lora_B", "lora_E", "ranknum"];

    private readonly LinearLayer _host;
    private readonly ParameterDict _a = new(), _b = new(), _e = new(), _ranknum = new();
    private readonly Dictionary<string, (double Scaling, double Dropout)> _settings = new();

    private readonly DropoutSource _random;

    public AdaLoraLayer(LinearLayer host, DropoutSource random)
    {
        _random = random;
        if (host.Tuner is not null) throw new InvalidOperationException("layer already carries an adapter");
        _host = host;
        host.register_module("lora_A", _a);
        host.register_module("lora_B", _b);
        host.register_module("lora_E", _e);
        host.register_module("ranknum", _ranknum);
        host.Tuner = this;
    }

    public LinearLayer Host => _host;
    public List<string> ActiveAdapters { get; } = new();
    public List<string> MergedAdapters { get; } = new();
    public bool Merged => MergedAdapters.Count > 0;
    public bool Disabled { get; set; }
    public IEnumerable<string> Adapters => _settings.Keys;

    public bool Has(string adapter) => _settings.ContainsKey(adapter);
    public Parameter A(string adapter) => _a[adapter];
    public Parameter B(string adapter) => _b[adapter];
    public Parameter E(string adapter) => _e[adapter];
    public Parameter RankNum(string adapter) => _ranknum[adapter];
    public int Rank(string adapter) => (int)_e[adapter].shape[0];

    /// <summary>Adds an adapter of rank <paramref name="r"/>; scaling = lora_alpha (or r when alpha ≤ 0) as in PEFT.</summary>
    public void AddAdapter(string name, int r, double alpha, double dropout, bool initWeights, Generator? gen)
    {
        if (Has(name)) throw new InvalidOperationException($"adapter '{name}' already exists on this layer");
        if (r < 0) throw new ArgumentException($"AdaLoRA rank must be >= 0, got {r}");
        var dev = _host.weight.device;
        using var noGrad = torch.no_grad();
        var a = torch.empty([r, _host.InFeatures], ScalarType.Float32, dev);
        var e = torch.empty([r, 1], ScalarType.Float32, dev);
        var b = torch.empty([_host.OutFeatures, r], ScalarType.Float32, dev);
        if (initWeights)
        {
            // Starts as a no-op (E = 0) with small random singular vectors.
            e.zero_();
            a.normal_(0, 0.02, gen);
            b.normal_(0, 0.02, gen);
        }
        else
        {
            foreach (var t in new[] { a, e, b }) t.normal_(0, 1, gen);
        }
        _a.Add(name, new Parameter(a));
        _e.Add(name, new Parameter(e));
        _b.Add(name, new Parameter(b));
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar rank = (float)r;
        _ranknum.Add(name, new Parameter(torch.full([1], rank, ScalarType.Float32, dev), requires_grad: false));
        _settings[name] = (alpha > 0 ? alpha : r, dropout);
    }

    /// <summary>
    /// Re-creates the adapter with only the ranks flagged in <paramref name="keep"/> (PEFT's
    /// <c>resize_modules_by_rank_pattern</c>); ranknum keeps the initial rank so the effective scale does not change.
    /// </summary>
    public void Resize(string name, bool[] keep, double alpha)
    {
        if (keep.Length != Rank(name))
            throw new ArgumentException($"rank pattern has {keep.Length} flags but the adapter has rank {Rank(name)}");
        using var noGrad = torch.no_grad();
        using var idx = torch.tensor(keep.Select((k, i) => (k, i)).Where(t => t.k).Select(t => (long)t.i).ToArray(), device: _host.weight.device);
        int r = keep.Count(k => k);
        Replace(_a, name, _a[name].index_select(0, idx));
        Replace(_e, name, _e[name].index_select(0, idx));
        Replace(_b, name, _b[name].index_select(1, idx));
        _settings[name] = (alpha > 0 ? alpha : r, _settings[name].Dropout);
    }

    private static void Replace(ParameterDict dict, string name, Tensor value)
    {
        var old = dict[name];
        dict.Remove(name);
        dict.Add(name, new Parameter(value, old.requires_grad));
        old.Dispose();
    }

    public void DeleteAdapter(string name)
    {
        if (MergedAdapters.Contains(name)) throw new InvalidOperationException($"adapter '{name}' is merged; unmerge it before deleting");
        if (!_settings.Remove(name)) return;
        foreach (var d in new[] { _a, _b, _e, _ranknum })
        {
            var p = d[name];
            d.Remove(name);
            p.Dispose();
        }
        ActiveAdapters.Remove(name);
    }

    public void Detach()
    {
        foreach (var c in Containers) _host.register_module(c, null!);
        _host.Tuner = null;
        // Unregistered: free the factors now, not at finalization.
        foreach (var d in new[] { _a, _b, _e, _ranknum }) d.Dispose();
    }

    public Tensor Forward(Tensor x)
    {
        if (Disabled)
        {
            if (Merged) Unmerge();
            return _host.BaseForward(x);
        }
        if (Merged) return _host.BaseForward(x);
        using var scope = torch.NewDisposeScope();
        var result = _host.BaseForward(x);
        var outDtype = result.dtype;
        using Scalar rankEps = 1e-5;
        foreach (var name in ActiveAdapters)
        {
            if (!_settings.TryGetValue(name, out var s)) continue;
            var xa = x.to(ScalarType.Float32);
            xa = _random.Apply(xa, s.Dropout, _host.training);
            var ae = _a[name] * _e[name];
            using Scalar scaling = s.Scaling;
            var delta = xa.matmul(ae.t()).matmul(_b[name].t()) * scaling / (_ranknum[name] + rankEps);
            result = result + delta.to(outDtype);
        }
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>ΔW = B·(A⊙E)·scaling / (ranknum + 1e-5) in the host weight's storage layout.</summary>
    public Tensor DeltaWeight(string adapter)
    {
        using var scope = torch.NewDisposeScope();
        using Scalar scaling = _settings[adapter].Scaling, rankEps = 1e-5;
        var d = _b[adapter].matmul(_a[adapter] * _e[adapter]) * scaling / (_ranknum[adapter] + rankEps);
        return (_host.FanInFanOut ? d.t().contiguous() : d).MoveToOuterDisposeScope();
    }

    public void Merge(IReadOnlyList<string>? adapters = null, bool safe = false)
    {
        using var noGrad = torch.no_grad();
        foreach (var name in adapters ?? ActiveAdapters)
        {
            if (!Has(name) || MergedAdapters.Contains(name)) continue;
            using var scope = torch.NewDisposeScope();
            var merged = _host.ReadWeight() + DeltaWeight(name);
            if (safe && !merged.isfinite().all().item<bool>())
                throw new InvalidOperationException($"NaNs or infinities detected when merging adapter '{name}'; the adapter seems broken");
            _host.WriteWeight(merged);
            MergedAdapters.Add(name);
        }
    }

    public void Unmerge()
    {
        using var noGrad = torch.no_grad();
        while (MergedAdapters.Count > 0)
        {
            string name = MergedAdapters[^1];
            MergedAdapters.RemoveAt(MergedAdapters.Count - 1);
            using var scope = torch.NewDisposeScope();
            _host.WriteWeight(_host.ReadWeight() - DeltaWeight(name));
        }
    }
}
