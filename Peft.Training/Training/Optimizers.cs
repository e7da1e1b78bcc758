using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Training;

/// <summary>A trainable tensor with a stable name (its checkpoint key), used to save and restore optimizer state.</summary>
public sealed record NamedParameter(string Name, Parameter Parameter);

/// <summary>Parameters sharing a base learning rate and weight decay (torch's param_groups).</summary>
public sealed record ParamGroup(string Name, IReadOnlyList<NamedParameter> Parameters, double LearningRate, double WeightDecay);

/// <summary>
/// Optimizer over named parameter groups. State tensors are exposed by name so checkpoints can store them in a
/// safetensors file and resume bit-exactly. Each group's learning rate is its base rate times the schedule factor.
/// </summary>
public abstract class Optimizer : IDisposable
{
    protected Optimizer(IReadOnlyList<ParamGroup> groups)
    {
        var names = new HashSet<string>();
        foreach (var g in groups)
            foreach (var p in g.Parameters)
                if (!names.Add(p.Name)) throw new ArgumentException($"parameter '{p.Name}' is in more than one group");
        Groups = groups;
    }

    public IReadOnlyList<ParamGroup> Groups { get; }

    public IEnumerable<NamedParameter> AllParameters => Groups.SelectMany(g => g.Parameters);

    /// <summary>One update with every group's rate scaled by <paramref name="lrFactor"/>; parameters without a grad are skipped.</summary>
    public void Step(double lrFactor)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        foreach (var g in Groups)
        {
            var withGrad = new List<(NamedParameter Param, Tensor Grad)>(g.Parameters.Count);
            foreach (var p in g.Parameters)
                if (p.Parameter.grad is { } grad) withGrad.Add((p, grad));
            if (withGrad.Count > 0) UpdateGroup(withGrad, g.LearningRate * lrFactor, g.WeightDecay);
        }
    }

    /// <summary>
    /// Updates one group's parameters that have a grad, in order. A whole group at a time so that the Scalars shared by
    /// its parameters (rate, decay, betas) are made once per step, not once per parameter.
    /// </summary>
    protected abstract void UpdateGroup(IReadOnlyList<(NamedParameter Param, Tensor Grad)> parameters, double lr, double weightDecay);

    /// <summary>Drops every gradient (torch's <c>zero_grad(set_to_none=True)</c>).</summary>
    public void ZeroGrad()
    {
        foreach (var p in AllParameters)
        {
            var g = p.Parameter.grad;
            if (g is null) continue;
            p.Parameter.grad = null;
            g.Dispose();
        }
    }

    /// <summary>State tensors keyed "<c>{parameter}::{slot}</c>"; the caller disposes them (aliases of the live state, not copies).</summary>
    public abstract IEnumerable<KeyValuePair<string, Tensor>> StateTensors();

    /// <summary>Restores state written by <see cref="StateTensors"/> (copies; missing slots mean "not stepped yet").</summary>
    public abstract void LoadState(IReadOnlyDictionary<string, Tensor> state);

    public abstract void Dispose();

    protected static Tensor NewState(Parameter p) => torch.zeros_like(p).DetachFromDisposeScope();
}

/// <summary>
/// torch.optim.AdamW (single-tensor path, amsgrad off): decoupled decay p *= 1 − lr·wd, then
/// m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², p −= lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε), with a step count t per tensor.
/// </summary>
public sealed class AdamW(IReadOnlyList<ParamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
    : Optimizer(groups)
{
    private sealed class Slot(Tensor m, Tensor v)
    {
        public Tensor ExpAvg { get; } = m;
        public Tensor ExpAvgSq { get; } = v;
        public long Step { get; set; }
    }

    private readonly Dictionary<string, Slot> _state = new();

    protected override void UpdateGroup(IReadOnlyList<(NamedParameter Param, Tensor Grad)> parameters, double lr, double weightDecay)
    {
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar decayFactor = 1 - lr * weightDecay, avgKeep = beta1, avgWeight = 1 - beta1,
            sqKeep = beta2, sqWeight = 1 - beta2, epsilon = eps;
        foreach (var (p, grad) in parameters)
        {
            if (!_state.TryGetValue(p.Name, out var s))
                _state[p.Name] = s = new Slot(NewState(p.Parameter), NewState(p.Parameter));
            s.Step++;
            var param = p.Parameter;
            if (weightDecay != 0) param.mul_(decayFactor);
            s.ExpAvg.mul_(avgKeep).add_(grad, avgWeight);
            s.ExpAvgSq.mul_(sqKeep).addcmul_(grad, grad, sqWeight);
            double bc1 = 1 - Math.Pow(beta1, s.Step);
            double bc2Sqrt = Math.Sqrt(1 - Math.Pow(beta2, s.Step));
            // The bias corrections follow each tensor's own step count, so these two are per parameter.
            using Scalar sqrtCorrection2 = bc2Sqrt, stepSize = -lr / bc1;
            using var denom = s.ExpAvgSq.sqrt().div_(sqrtCorrection2).add_(epsilon);
            param.addcdiv_(s.ExpAvg, denom, stepSize);
        }
    }

    public override IEnumerable<KeyValuePair<string, Tensor>> StateTensors()
    {
        foreach (var (name, s) in _state)
        {
            yield return new($"{name}::exp_avg", s.ExpAvg.alias());
            yield return new($"{name}::exp_avg_sq", s.ExpAvgSq.alias());
            yield return new($"{name}::step", torch.tensor(s.Step));
        }
    }

    public override void LoadState(IReadOnlyDictionary<string, Tensor> state)
    {
        Dispose();
        foreach (var p in AllParameters)
        {
            if (!state.TryGetValue($"{p.Name}::exp_avg", out var m)) continue;
            var s = new Slot(NewState(p.Parameter), NewState(p.Parameter));
            using (torch.no_grad())
            {
                s.ExpAvg.copy_(m);
                s.ExpAvgSq.copy_(state[$"{p.Name}::exp_avg_sq"]);
            }
            s.Step = state[$"{p.Name}::step"].item<long>();
            _state[p.Name] = s;
        }
    }

    public override void Dispose()
    {
        foreach (var s in _state.Values) { s.ExpAvg.Dispose(); s.ExpAvgSq.Dispose(); }
        _state.Clear();
    }
}

/// <summary>torch.optim.SGD: g += wd·p (coupled L2), optional momentum buf = μ·buf + g (first step: buf = g), p −= lr·buf.</summary>
public sealed class Sgd(IReadOnlyList<ParamGroup> groups, double momentum = 0) : Optimizer(groups)
{
    private readonly Dictionary<string, Tensor> _momentum = new();

    protected override void UpdateGroup(IReadOnlyList<(NamedParameter Param, Tensor Grad)> parameters, double lr, double weightDecay)
    {
        using Scalar decay = weightDecay, mu = momentum, negLr = -lr;
        foreach (var (p, grad) in parameters)
        {
            var d = weightDecay != 0 ? grad.add(p.Parameter, decay) : grad;
            if (momentum != 0)
            {
                if (_momentum.TryGetValue(p.Name, out var buf)) buf.mul_(mu).add_(d);
                else _momentum[p.Name] = buf = d.clone().DetachFromDisposeScope();
                d = buf;
            }
            p.Parameter.add_(d, negLr);
        }
    }

    public override IEnumerable<KeyValuePair<string, Tensor>> StateTensors() =>
        _momentum.Select(kv => new KeyValuePair<string, Tensor>($"{kv.Key}::momentum_buffer", kv.Value.alias()));

    public override void LoadState(IReadOnlyDictionary<string, Tensor> state)
    {
        Dispose();
        foreach (var p in AllParameters)
            if (state.TryGetValue($"{p.Name}::momentum_buffer", out var b))
                _momentum[p.Name] = b.clone().DetachFromDisposeScope();
    }

    public override void Dispose()
    {
        foreach (var t in _momentum.Values) t.Dispose();
        _momentum.Clear();
    }
}
