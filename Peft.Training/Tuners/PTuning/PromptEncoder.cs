using Peft.Training.Nn;
using Peft.Training.Tuners.PromptLearning;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.PTuning;

/// <summary>
/// PEFT's P-tuning <c>PromptEncoder</c>: an [n, D] table fed through <c>mlp_head</c> = Linear(D,h) → ReLU → Linear(h,h) →
/// ReLU → Linear(h,D), or through <c>lstm_head</c> = bi-LSTM(D→h) then <c>mlp_head</c> = Linear(2h,2h) → ReLU → Linear(2h,D).
/// The virtual tokens form one sequence for the LSTM. In inference mode only the table exists.
/// </summary>
public sealed class PromptEncoder : VirtualTokenEncoder
{
    private readonly LSTM? _lstm;
    private readonly nn.Module<Tensor, Tensor>? _mlp;

    public PromptEncoder(PromptEncoderConfig config, Device device, Generator? gen)
        : base(nameof(PromptEncoder), config.TotalVirtualTokens, config.TokenDim!.Value, device)
    {
        long dim = config.TokenDim!.Value, hidden = config.EncoderHiddenSize!.Value;
        using var noGrad = torch.no_grad();
        Embedding.weight.normal_(0, 1, gen);
        if (config.InferenceMode) return;
        if (config.EncoderReparameterizationType == EncoderReparameterizationType.Lstm)
        {
            _lstm = nn.LSTM(dim, hidden, config.EncoderNumLayers, bidirectional: true, batchFirst: true,
                dropout: config.EncoderDropout, device: device, dtype: ScalarType.Float32);
            // nn.LSTM's default init, U(−1/√h, 1/√h), redrawn so a seeded PeftModel is reproducible.
            double bound = 1.0 / Math.Sqrt(hidden);
            foreach (var p in _lstm.parameters()) p.uniform_(-bound, bound, gen);
            register_module("lstm_head", _lstm);
            _mlp = Mlp(device, gen, (2 * hidden, 2 * hidden), (2 * hidden, dim));
        }
        else
        {
            _mlp = Mlp(device, gen, (dim, hidden), (hidden, hidden), (hidden, dim));
        }
        register_module("mlp_head", _mlp);
    }

    /// <summary>Linear layers with ReLU between them, named 0, 2, 4 ... like torch's Sequential.</summary>
    private static nn.Module<Tensor, Tensor> Mlp(Device device, Generator? gen, params (long In, long Out)[] shapes)
    {
        var items = new List<(string, nn.Module<Tensor, Tensor>)>();
        for (int i = 0; i < shapes.Length; i++)
        {
            if (i > 0) items.Add(((2 * i - 1).ToString(System.Globalization.CultureInfo.InvariantCulture), nn.ReLU()));
            var linear = new LinearLayer(shapes[i].In, shapes[i].Out, true, device, ScalarType.Float32);
            InitLinear(linear, gen);
            items.Add(((2 * i).ToString(System.Globalization.CultureInfo.InvariantCulture), linear));
        }
        return nn.Sequential(items.ToArray());
    }

    public override bool IsTableOnly => _mlp is null;

    protected override Tensor Head(Tensor table)
    {
        if (_lstm is null) return _mlp!.forward(table);
        var (sequence, h, c) = _lstm.forward(table.unsqueeze(0));
        h.Dispose();
        c.Dispose();
        return _mlp!.forward(sequence.squeeze(0));
    }
}
