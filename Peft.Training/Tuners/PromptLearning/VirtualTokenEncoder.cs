using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.PromptLearning;

/// <summary>
/// A prompt-learning encoder (PEFT's <c>prompt_encoder.&lt;adapter&gt;</c>): an <c>embedding</c> table of virtual tokens,
/// optionally followed by a reparameterisation head (prefix projection MLP, P-tuning MLP/LSTM). Its output for the
/// prompt tokens 0..n-1 is what PEFT saves as <c>prompt_embeddings</c>; in inference mode only the table exists and
/// holds that output directly.
/// </summary>
public abstract class VirtualTokenEncoder : nn.Module
{
    private Parameter? _snapshot;

    protected VirtualTokenEncoder(string name, long rows, long tableDim, Device device) : base(name)
    {
        // PEFT builds prompt encoders in float32 whatever the base model's dtype; outputs are cast at use.
        Embedding = new EmbeddingLayer(rows, tableDim, device, ScalarType.Float32);
        register_module("embedding", Embedding);
    }

    public EmbeddingLayer Embedding { get; }

    /// <summary>True when there is no head: the table is the output (and the tensor that is saved and loaded).</summary>
    public abstract bool IsTableOnly { get; }

    /// <summary>The head applied to the table (only called when <see cref="IsTableOnly"/> is false).</summary>
    protected abstract Tensor Head(Tensor table);

    /// <summary>Encoded virtual tokens, [rows, width], float32, with autograd to the encoder parameters.</summary>
    public Tensor Output() => IsTableOnly ? Embedding.weight.alias() : Head(Embedding.weight);

    /// <summary>
    /// The tensor saved as <c>prompt_embeddings</c>: the table itself, or (with a head) a detached copy of the output
    /// refreshed on every call. The copy is not registered, so it is neither counted nor trained.
    /// </summary>
    public Parameter SavedTensor()
    {
        if (IsTableOnly) return Embedding.weight;
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        // Eval mode so LSTM dropout cannot make the saved prompt random.
        bool wasTraining = training;
        train(false);
        try
        {
            var output = Output();
            if (_snapshot is null || !_snapshot.shape.SequenceEqual(output.shape))
            {
                _snapshot?.Dispose();
                _snapshot = new Parameter(torch.zeros(output.shape, output.dtype, output.device), requires_grad: false);
                _snapshot.DetachFromDisposeScope();
            }
            _snapshot.copy_(output);
        }
        finally
        {
            train(wasTraining);
        }
        return _snapshot;
    }

    /// <summary>nn.Linear's default init: weight and bias ~ U(−1/√fan_in, 1/√fan_in).</summary>
    protected static void InitLinear(LinearLayer layer, Generator? gen)
    {
        double bound = 1.0 / Math.Sqrt(layer.InFeatures);
        layer.weight.uniform_(-bound, bound, gen);
        layer.bias?.uniform_(-bound, bound, gen);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _snapshot?.Dispose();
            _snapshot = null;
        }
        base.Dispose(disposing);
    }
}
