using static TorchSharp.torch;

namespace Peft.Training.Tuners.Lora;

public sealed partial class LoraLayer
{
    /// <summary>
    /// Mixed-batch LoRA for many distinct adapters at once (as Punica's / S-LoRA's gathered matmul): each row's A and B
    /// are gathered into [rows, r, in] and [rows, out, r] stacks (zeros for rows without one here, zero-padded to the
    /// largest rank, which adds exact zeros) and applied with two batched matmuls. The per-adapter loop costs four
    /// small ops per distinct adapter and layer, which at 32 adapters costs more than the base product itself.
    /// Null when this batch doesn't qualify (training with dropout, an embedding layer, a B bias, or fewer than two
    /// distinct adapters), and the caller loops.
    /// </summary>
    private Tensor? GatheredDelta(Tensor x, IReadOnlyList<string> rows)
    {
        if (_linear is null || (Host.AsModule.training && rows.Any(r => _settings.TryGetValue(r, out var s) && s.Dropout > 0))) return null;
        var present = rows.Where(_settings.ContainsKey).Distinct().ToList();
        if (present.Count < 2) return null;
        int rMax = 0;
        foreach (var name in present)
        {
            var s = _settings[name];
            if (s.UseDora) throw new Core.PeftUserException($"adapter '{name}' uses DoRA, which cannot be mixed in a batch");
            if (_loraB![name].bias is not null) return null;
            rMax = Math.Max(rMax, s.R);
        }
        var (a0, _) = Factors(present[0]);
        var dtype = a0.dtype;
        var zeroA = zeros([rMax, InFeatures], dtype, x.device);
        var zeroB = zeros([OutFeatures, rMax], dtype, x.device);
        var perRowA = new Tensor[rows.Count];
        var perRowB = new Tensor[rows.Count];
        var scales = new float[rows.Count];
        var padded = new Dictionary<string, (Tensor A, Tensor B)>();
        for (int i = 0; i < rows.Count; i++)
        {
            if (!_settings.TryGetValue(rows[i], out var s)) { perRowA[i] = zeroA; perRowB[i] = zeroB; continue; }
            if (!padded.TryGetValue(rows[i], out var f))
            {
                var (a, b) = Factors(rows[i]);
                f = s.R == rMax ? (a, b)
                    : (nn.functional.pad(a, [0, 0, 0, rMax - s.R]), nn.functional.pad(b, [0, rMax - s.R]));
                padded[rows[i]] = f;
            }
            (perRowA[i], perRowB[i], scales[i]) = (f.A, f.B, (float)s.Scaling);
        }
        var stackA = stack(perRowA);   // [rows, r, in]
        var stackB = stack(perRowB);   // [rows, out, r]
        var x3 = x.reshape(rows.Count, -1, InFeatures).to(dtype);
        var delta = x3.bmm(stackA.transpose(1, 2)).bmm(stackB.transpose(1, 2));
        delta = delta * tensor(scales, device: x.device).to(dtype).reshape(rows.Count, 1, 1);
        var shape = x.shape.ToArray();
        shape[^1] = OutFeatures;
        return delta.reshape(shape);
    }
}
