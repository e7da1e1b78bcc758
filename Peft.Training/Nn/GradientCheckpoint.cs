using Peft.Training.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Nn;

/// <summary>
/// Activation (gradient) checkpointing for one block, like <c>torch.utils.checkpoint</c> (reentrant variant): the
/// forward runs without building a graph, so the block's activations are not kept; backward re-runs the block with
/// grad enabled and differentiates the recomputed output.
/// </summary>
/// <remarks>
/// The block's trainable parameters are passed to the autograd function as explicit inputs. That makes the node
/// part of the graph even when the block input does not require grad (frozen embeddings + adapters), so PyTorch's
/// <c>enable_input_require_grads</c> workaround is not needed, and their gradients flow back through the engine.
/// The state of the generator dropout draws from (the model's <see cref="RandomSource"/>) is saved and restored
/// around the recompute so dropout masks are identical.
/// </remarks>
/// <summary>
/// How a backbone runs one of its layers: directly, or checkpointed (see <see cref="PretrainedModel"/>'s
/// <c>RunDecoderLayer</c>). <paramref name="constants"/> are the per-forward tensors the layer reads (masks, rotary
/// tables), passed explicitly so a checkpointed recompute still has them after the forward's dispose scope ended.
/// </summary>
public delegate Tensor LayerRunner(nn.Module layer, Tensor hidden, IReadOnlyList<Tensor> constants, GradientCheckpoint.Block run, bool usesCache);

public static class GradientCheckpoint
{
    /// <summary>A block: (input, constant tensors) → output. Constants never receive gradients.</summary>
    public delegate Tensor Block(Tensor input, IReadOnlyList<Tensor> constants);

    /// <summary>
    /// Runs <paramref name="block"/> checkpointed. <paramref name="constants"/> (masks, rotary tables) are kept alive
    /// for the recompute; <paramref name="parameters"/> are the block's parameters that require grad.
    /// </summary>
    public static Tensor Run(Block block, Tensor input, IReadOnlyList<Tensor> constants, IReadOnlyList<Parameter> parameters,
        RandomSource? random = null)
    {
        var args = new object[3 + parameters.Count];
        args[0] = new Payload(block, constants.Count, random ?? new RandomSource());
        args[1] = input;
        // Constants go through save_for_backward (below), which keeps their storage alive after the caller's dispose
        // scope ends; they are not passed as inputs so no gradient slot is reserved for them.
        args[2] = new ConstantList(constants);
        for (int i = 0; i < parameters.Count; i++) args[3 + i] = parameters[i];
        return CheckpointFunction.apply(args);
    }

    private sealed record Payload(Block Block, int ConstantCount, RandomSource Random);

    private sealed record ConstantList(IReadOnlyList<Tensor> Tensors);

    private sealed class CheckpointFunction : autograd.SingleTensorFunction<CheckpointFunction>
    {
        public override string Name => "GradientCheckpoint";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var payload = (Payload)vars[0];
            var input = (Tensor)vars[1];
            var constants = ((ConstantList)vars[2]).Tensors;
            var saved = new List<Tensor> { input };
            saved.AddRange(constants);
            for (int i = 3; i < vars.Length; i++) saved.Add((Tensor)vars[i]);
            ctx.save_for_backward(saved);
            ctx.save_data("payload", payload);
            ctx.save_data("input_requires_grad", input.requires_grad);
            // save_data takes no tensors: keep the RNG state as bytes.
            using (var rng = payload.Random.GetState()) ctx.save_data("rng", rng.data<byte>().ToArray());
            // apply() already runs this under no_grad: nothing inside the block is recorded.
            return payload.Block(input, constants);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var payload = (Payload)ctx.get_data("payload");
            bool inputRequiresGrad = (bool)ctx.get_data("input_requires_grad");
            var rng = (byte[])ctx.get_data("rng");
            var grads = new List<Tensor?>();
            var current = payload.Random.GetState();
            try
            {
                using var scope = torch.NewDisposeScope();
                payload.Random.SetState(torch.tensor(rng));
                var saved = ctx.get_saved_variables();
                var constants = saved.GetRange(1, payload.ConstantCount);
                var parameters = saved.GetRange(1 + payload.ConstantCount, saved.Count - 1 - payload.ConstantCount);
                using var enable = torch.enable_grad();
                var x = saved[0].detach().requires_grad_(inputRequiresGrad);
                var y = payload.Block(x, constants);
                var wrt = new List<Tensor>();
                if (inputRequiresGrad) wrt.Add(x);
                wrt.AddRange(parameters);
                var computed = wrt.Count == 0 || !y.requires_grad
                    ? wrt.Select(_ => (Tensor?)null).ToList()
                    : autograd.grad([y], wrt, [gradOutput], allow_unused: true).Select(g => g.IsInvalid ? null : (Tensor?)g).ToList();
                int k = 0;
                // One slot per forward argument: payload, input, constant list, then each parameter.
                grads.Add(null);
                grads.Add(inputRequiresGrad ? computed[k++] : null);
                grads.Add(null);
                while (k < computed.Count) grads.Add(computed[k++]);
                foreach (var g in grads) g?.MoveToOuterDisposeScope();
            }
            finally
            {
                payload.Random.SetState(current);
                current.Dispose();
            }
            return grads!;
        }
    }
}
