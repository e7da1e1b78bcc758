using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Quantization;

/// <summary>
/// Forward of a linear layer whose weight is quantised: like bitsandbytes' <c>Linear4bit</c>/<c>Linear8bitLt</c>, the
/// input is cast to the compute dtype, the weight dequantised to it for this call only, and the output cast back.
/// </summary>
/// <remarks>
/// With grad enabled the matmul runs in an autograd function that saves nothing but a reference to the layer and
/// dequantises again in backward (bitsandbytes' <c>MatMul4Bit</c> does the same): a plain <c>linear</c> would keep
/// every dequantised weight alive until backward, and the memory saving would be gone. The weight never receives a
/// gradient; the input does (adapters below it train).
/// </remarks>
public static class QuantizedLinear
{
    /// <summary>Where warnings go (lossy merges); stderr by default.</summary>
    public static Action<string> Warn { get; set; } = msg => Console.Error.WriteLine("warning: " + msg);

    public static Tensor Forward(LinearLayer layer, Tensor x)
    {
        var dtype = layer.ComputeDType;
        using var scope = torch.NewDisposeScope();
        var xin = x.dtype == dtype ? x : x.to(dtype);
        Tensor y;
        if (torch.is_grad_enabled() && xin.requires_grad)
            y = DequantMatmul.apply(xin, layer);
        else
        {
            using var w = layer.Quantized!.Dequantize(dtype);
            y = nn.functional.linear(xin, w);
        }
        if (layer.bias is { } b) y = y + (b.dtype == dtype ? b : b.to(dtype));
        if (y.dtype != x.dtype) y = y.to(x.dtype);
        return y.MoveToOuterDisposeScope();
    }

    private sealed class DequantMatmul : autograd.SingleTensorFunction<DequantMatmul>
    {
        public override string Name => "DequantMatmul";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var x = (Tensor)vars[0];
            var layer = (LinearLayer)vars[1];
            ctx.save_data("layer", layer);
            // Without grad, as PyTorch runs a Function's forward: recorded, the inner linear would save the dequantised
            // weight in its own graph node, and every layer's would stay alive until backward.
            using var noGrad = torch.no_grad();
            using var w = layer.Quantized!.Dequantize(x.dtype);
            return nn.functional.linear(x, w);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var layer = (LinearLayer)ctx.get_data("layer");
            using var w = layer.Quantized!.Dequantize(gradOutput.dtype);
            // y = x·Wᵀ  ⇒  dL/dx = dL/dy · W
            return [gradOutput.matmul(w), null!];
        }
    }
}
