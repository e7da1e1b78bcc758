using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Nn;

/// <summary>The activation functions named by HF configs (<c>hidden_act</c>, <c>activation_function</c>).</summary>
public static class Activations
{
    public static Func<Tensor, Tensor> Get(string name) => name switch
    {
        "silu" or "swish" => x => nn.functional.silu(x),
        "relu" => x => nn.functional.relu(x),
        "gelu" => x => nn.functional.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => GeluTanh,
        "tanh" => x => x.tanh(),
        _ => throw new ArgumentException($"unsupported activation '{name}'"),
    };

    /// <summary>GELU, tanh approximation (HF <c>gelu_new</c>): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    public static Tensor GeluTanh(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar three = 3, cubeCoef = 0.044715, sqrtTwoOverPi = Math.Sqrt(2.0 / Math.PI), half = 0.5, one = 1.0;
        var inner = (x + x.pow(three) * cubeCoef) * sqrtTwoOverPi;
        return (x * half * (inner.tanh() + one)).MoveToOuterDisposeScope();
    }
}
