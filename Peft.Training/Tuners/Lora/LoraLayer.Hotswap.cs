using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.Lora;

public sealed partial class LoraLayer
{
    /// <summary>Current storage rank of an adapter's tensors (≥ its r after <see cref="PadRank"/>).</summary>
    public long StoredRank(string adapter) => Factors(adapter).A.shape[0];

    /// <summary>
    /// Zero-pads A (rows) and B (columns) to <paramref name="targetRank"/>: the output is unchanged, and later hot-swaps
    /// of adapters up to that rank copy in place (PEFT's <c>prepare_model_for_compiled_hotswap</c>).
    /// </summary>
    public void PadRank(string adapter, long targetRank)
    {
        long current = StoredRank(adapter);
        if (targetRank < current) throw new ArgumentException($"target rank {targetRank} is below the adapter's rank {current}");
        if (targetRank == current) return;
        using var noGrad = torch.no_grad();
        var (a, b) = Factors(adapter);
        var newA = torch.zeros([targetRank, a.shape[1]], a.dtype, a.device);
        var newB = torch.zeros([b.shape[0], targetRank], b.dtype, b.device);
        newA.narrow(0, 0, current).copy_(a);
        newB.narrow(1, 0, current).copy_(b);
        ReplaceStorage(adapter, newA, newB);
    }

    /// <summary>
    /// Hot-swaps an adapter's weights: same shape → copied in place; smaller rank → zeroed and copied into the leading
    /// rows/columns (in place); larger rank → new tensors. <paramref name="a"/>/<paramref name="b"/> null = zero-fill
    /// (the new adapter does not touch this layer). Scaling comes from <paramref name="settings"/>.
    /// </summary>
    public void Swap(string adapter, Tensor? a, Tensor? b, LoraAdapterSettings settings)
    {
        ReleaseRowCache();
        ForgetPooled(adapter);
        using var noGrad = torch.no_grad();
        var (curA, curB) = Factors(adapter);
        if (a is null || b is null)
        {
            curA.zero_();
            curB.zero_();
        }
        else if (a.shape[0] <= curA.shape[0])
        {
            long r = a.shape[0];
            curA.zero_();
            curB.zero_();
            curA.narrow(0, 0, r).copy_(a);
            curB.narrow(1, 0, r).copy_(b);
        }
        else
        {
            ReplaceStorage(adapter, a.to(curA.dtype, curA.device).clone(), b.to(curB.dtype, curB.device).clone());
        }
        var old = _settings[adapter];
        _settings[adapter] = settings with { Dropout = old.Dropout };
    }

    private void ReplaceStorage(string adapter, Tensor newA, Tensor newB)
    {
        ReleaseRowCache();
        ForgetPooled(adapter);
        bool trainable = Factors(adapter).A.requires_grad;
        if (_linear is not null)
        {
            var la = new LinearLayer(newA.shape[1], newA.shape[0], false, newA.device, newA.dtype);
            var lb = new LinearLayer(newB.shape[1], newB.shape[0], _loraB![adapter].bias is not null, newB.device, newB.dtype);
            using (torch.no_grad())
            {
                la.weight.copy_(newA);
                lb.weight.copy_(newB);
                if (_loraB[adapter].bias is { } oldBias) lb.bias!.copy_(oldBias);
            }
            _loraA!.Remove(adapter);
            _loraB.Remove(adapter);
            _loraA.Add(adapter, la);
            _loraB.Add(adapter, lb);
        }
        else
        {
            _embA!.Remove(adapter);
            _embB!.Remove(adapter);
            _embA.Add(adapter, new Parameter(newA));
            _embB.Add(adapter, new Parameter(newB));
        }
        foreach (var p in AdapterParameters(adapter)) p.requires_grad = trainable;
    }
}
