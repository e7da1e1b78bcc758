using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners;

/// <summary>
/// PEFT's <c>ModulesToSaveWrapper</c> for one layer: a trainable copy per adapter (<c>modules_to_save.{adapter}.weight</c>)
/// used instead of the frozen original while that adapter is active. Saved under the original module's key.
/// </summary>
public sealed class ModulesToSaveLayer : ILayerTuner
{
    private readonly IAdaptableLayer _host;
    private readonly ModuleMap<nn.Module<Tensor, Tensor>> _copies = new();

    public ModulesToSaveLayer(IAdaptableLayer host)
    {
        if (host.Tuner is not null) throw new InvalidOperationException("a module in modules_to_save cannot also be an adapter target");
        _host = host;
        host.AsModule.register_module("modules_to_save", _copies);
        host.Tuner = this;
    }

    public string? Active { get; set; }
    public bool Disabled { get; set; }
    public IReadOnlyList<string>? RowAdapterNames { get; set; }
    public IEnumerable<string> Adapters => _copies.Keys;

    public void AddAdapter(string name)
    {
        using var noGrad = torch.no_grad();
        nn.Module<Tensor, Tensor> copy = _host switch
        {
            LinearLayer l => CloneLinear(l),
            EmbeddingLayer e => CloneEmbedding(e),
            _ => throw new PeftUserException($"modules_to_save does not support {_host.GetType().Name}"),
        };
        _copies.Add(name, copy);
    }

    private static LinearLayer CloneLinear(LinearLayer l)
    {
        var c = new LinearLayer(l.InFeatures, l.OutFeatures, l.bias is not null, l.weight.device, l.weight.dtype, l.FanInFanOut);
        c.weight.copy_(l.weight);
        c.bias?.copy_(l.bias!);
        return c;
    }

    private static EmbeddingLayer CloneEmbedding(EmbeddingLayer e)
    {
        var c = new EmbeddingLayer(e.NumEmbeddings, e.EmbeddingDim, e.weight.device, e.weight.dtype, e.PaddingIdx);
        c.weight.copy_(e.weight);
        return c;
    }

    public IEnumerable<(string Suffix, TorchSharp.Modules.Parameter Param)> Parameters(string adapter) =>
        _copies.TryGetValue(adapter, out var m) ? m.named_parameters() : [];

    public void Delete(string adapter) => _copies.Remove(adapter);

    public Tensor Forward(Tensor x)
    {
        if (RowAdapterNames is { } rows) return MixedForward(x, rows);
        if (Disabled || Active is null || !_copies.TryGetValue(Active, out var copy)) return _host.BaseForward(x);
        return ((IAdaptableLayer)copy).BaseForward(x);
    }

    private Tensor MixedForward(Tensor x, IReadOnlyList<string> rows)
    {
        using var scope = torch.NewDisposeScope();
        var result = _host.BaseForward(x);
        foreach (var name in rows.Distinct())
        {
            if (!_copies.TryGetValue(name, out var copy)) continue;
            var idx = torch.tensor(rows.Select((n, i) => (n, i)).Where(t => t.n == name).Select(t => (long)t.i).ToArray(), device: x.device);
            var own = ((IAdaptableLayer)copy).BaseForward(x.index_select(0, idx));
            result = result.index_copy(0, idx, own.to(result.dtype));
        }
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Replaces the original weights by the active copy and removes the wrapper (merge_and_unload).</summary>
    public void Unload(bool keepActiveCopy)
    {
        using var noGrad = torch.no_grad();
        if (keepActiveCopy && Active is not null && _copies.TryGetValue(Active, out var copy))
        {
            var c = (IAdaptableLayer)copy;
            _host.weight.copy_(c.weight);
            if (_host is LinearLayer hl && c is LinearLayer cl && hl.bias is not null) hl.bias.copy_(cl.bias!);
        }
        _host.AsModule.register_module("modules_to_save", null!);
        _host.Tuner = null;
        _copies.Dispose(); // the copies (already written into the host when kept) are freed now, not at finalization
    }
}
