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
/// The default CPU RNG state, and the model's own dropout generator when it has one, are saved and restored around
/// the recompute so dropout masks are identical.
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
        DropoutSource? dropout = null)
    {
        CheckpointFunction.ReleaseReturnedGradients();
        var args = new object[3 + parameters.Count];
        args[0] = new Payload(block, constants.Count, dropout);
        args[1] = input;
        // Constants go through save_for_backward (below), which keeps their storage alive after the caller's dispose
        // scope ends; they are not passed as inputs so no gradient slot is reserved for them.
        args[2] = new ConstantList(constants);
        for (int i = 0; i < parameters.Count; i++) args[3 + i] = parameters[i];
        return CheckpointFunction.apply(args);
    }

    private sealed record Payload(Block Block, int ConstantCount, DropoutSource? Dropout);

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
            using (var rng = torch.random.get_rng_state()) ctx.save_data("rng", rng.data<byte>().ToArray());
            ctx.save_data("dropout_rng", payload.Dropout?.SaveState() ?? []);
            // apply() already runs this under no_grad: nothing inside the block is recorded.
            return payload.Block(input, constants);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            ReleaseReturnedGradients();
            var payload = (Payload)ctx.get_data("payload");
            bool inputRequiresGrad = (bool)ctx.get_data("input_requires_grad");
            var rng = (byte[])ctx.get_data("rng");
            var dropoutRng = (byte[])ctx.get_data("dropout_rng");
            Tensor? inputGrad = null;
            int parameterCount;
            var current = torch.random.get_rng_state();
            var currentDropout = payload.Dropout?.SaveState();
            try
            {
                using var scope = torch.NewDisposeScope();
                torch.random.set_rng_state(torch.tensor(rng));
                payload.Dropout?.RestoreState(dropoutRng);
                var saved = ctx.get_saved_variables();
                var constants = saved.GetRange(1, payload.ConstantCount);
                parameterCount = saved.Count - 1 - payload.ConstantCount;
                var parameters = saved.GetRange(1 + payload.ConstantCount, parameterCount);
                using var enable = torch.enable_grad();
                var x = saved[0].detach().requires_grad_(inputRequiresGrad);
                var y = payload.Block(x, constants);
                var wrt = new List<Tensor>();
                if (inputRequiresGrad) wrt.Add(x);
                wrt.AddRange(parameters);
                if (wrt.Count > 0 && y.requires_grad)
                {
                    // A nested backward (as torch.utils.checkpoint's reentrant variant does): parameter gradients go
                    // straight into .grad, where the engine adopts the fresh buffer. Returned through this node they
                    // would be copied, because our handle still references each one when the engine accumulates it
                    // (a full fine-tune kept a second copy of every layer's weight gradients until the step ended).
                    autograd.backward([y], [gradOutput], inputs: wrt);
                    if (inputRequiresGrad && x.grad is { } g) inputGrad = g.DetachFromDisposeScope();
                }
            }
            finally
            {
                torch.random.set_rng_state(current);
                current.Dispose();
                payload.Dropout?.RestoreState(currentDropout);
            }
            // The engine owns its own reference to the gradient it passed in; ours is no longer needed.
            gradOutput.Dispose();
            if (inputGrad is not null) Returned.Add(inputGrad);
            // One slot per forward argument: payload, input, constant list, then each parameter (already accumulated).
            var grads = new List<Tensor?> { null, inputGrad, null };
            grads.AddRange(Enumerable.Repeat<Tensor?>(null, parameterCount));
            return grads!;
        }

        /// <summary>
        /// Input gradients handed to the engine by earlier backward calls on this thread. TorchSharp reads the returned
        /// handles after <see cref="backward"/> returns, so they cannot be disposed there; the next checkpointed
        /// backward or forward on the thread disposes them (the engine holds its own reference), instead of one
        /// hidden-state-sized tensor per layer staying pinned until the step's dispose scope ends.
        /// </summary>
        [ThreadStatic] private static List<Tensor>? _returned;
        private static List<Tensor> Returned => _returned ??= new();

        internal static void ReleaseReturnedGradients()
        {
            if (_returned is null) return;
            foreach (var t in _returned) t.Dispose();
            _returned.Clear();
        }
    }
}
