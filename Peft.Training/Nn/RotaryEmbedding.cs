using Peft.Training.Models.Llama;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Nn;

/// <summary>Rotary position embedding (rotate-half convention of transformers' Llama), with linear/llama3 scaling.</summary>
public sealed class RotaryEmbedding
{
    private readonly double[] _invFreq;
    private readonly Dictionary<string, Tensor> _perDevice = new();

    public RotaryEmbedding(int headDim, double theta, RopeScaling? scaling)
    {
        int half = headDim / 2;
        _invFreq = new double[half];
        for (int i = 0; i < half; i++)
            _invFreq[i] = 1.0 / Math.Pow(theta, (2.0 * i) / headDim);
        if (scaling is null) return;
        if (scaling.Type == "linear")
        {
            for (int i = 0; i < half; i++) _invFreq[i] /= scaling.Factor;
        }
        else if (scaling.Type == "llama3")
        {
            double lowWave = scaling.OriginalMaxPositions / scaling.LowFreqFactor;
            double highWave = scaling.OriginalMaxPositions / scaling.HighFreqFactor;
            for (int i = 0; i < half; i++)
            {
                double f = _invFreq[i];
                double wave = 2 * Math.PI / f;
                if (wave > lowWave) _invFreq[i] = f / scaling.Factor;
                else if (wave >= highWave)
                {
                    double smooth = (scaling.OriginalMaxPositions / wave - scaling.LowFreqFactor) / (scaling.HighFreqFactor - scaling.LowFreqFactor);
                    _invFreq[i] = (1 - smooth) * f / scaling.Factor + smooth * f;
                }
            }
        }
    }

    private Tensor InvFreq(Device device)
    {
        string key = device.ToString();
        if (!_perDevice.TryGetValue(key, out var t))
        {
            t = torch.tensor(_invFreq.Select(x => (float)x).ToArray(), ScalarType.Float32, device).DetachFromDisposeScope();
            _perDevice[key] = t;
        }
        return t;
    }

    /// <summary>cos, sin of shape [batch, seq, head_dim] in <paramref name="dtype"/> for int64 positions [batch, seq].</summary>
    public (Tensor Cos, Tensor Sin) CosSin(Tensor positions, ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * InvFreq(positions.device);
        var emb = torch.cat([freqs, freqs], -1);
        var cos = emb.cos().to(dtype).MoveToOuterDisposeScope();
        var sin = emb.sin().to(dtype).MoveToOuterDisposeScope();
        return (cos, sin);
    }

    /// <summary>x·cos + rotate_half(x)·sin for x [batch, heads, seq, head_dim].</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = torch.NewDisposeScope();
        long half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        var rotated = torch.cat([-x2, x1], -1);
        return (x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1)).MoveToOuterDisposeScope();
    }
}
