using Peft.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Quantization;

/// <summary>PEFT's <c>prepare_model_for_kbit_training</c>.</summary>
public static class KbitTraining
{
    /// <summary>
    /// Freezes every parameter, casts every float16/bfloat16 parameter that is not a quantised weight (norms,
    /// embeddings, heads, biases) to float32, and turns on gradient checkpointing when asked. Adapters are added
    /// afterwards (<c>PeftModel.Create</c>). PEFT also makes the embedding output require grad so reentrant
    /// checkpointing sees a gradient path; this project's checkpoint function takes the block's trainable parameters
    /// as explicit inputs, so that hook is not needed (see <c>GradientCheckpoint</c>).
    /// </summary>
    public static PretrainedModel PrepareForKbitTraining(PretrainedModel model, bool useGradientCheckpointing = true)
    {
        using var noGrad = torch.no_grad();
        foreach (var (_, p) in model.named_parameters()) p.requires_grad_(false);
        // Leaf modules one by one: module.to(dtype) would also touch the quantised layers' float buffers (absmax).
        var tiedNames = model.TiedParameterNames;
        var tiedTensors = model.named_parameters().Where(p => tiedNames.Contains(p.name)).Select(p => p.parameter.Handle).ToHashSet();
        foreach (var (_, module) in model.named_modules().ToList())
        {
            var own = module.named_parameters(recurse: false).ToList();
            if (!own.Any(p => p.parameter.dtype is ScalarType.BFloat16 or ScalarType.Float16)) continue;
            if (module is Nn.LinearLayer { Quantized: not null } ql) { ql.CastBias(ScalarType.Float32); continue; }
            // A tied pair (embeddings = LM head) would come apart if one side were cast: it stays in its dtype.
            if (own.Any(p => tiedTensors.Contains(p.parameter.Handle))) continue;
            if (module.named_children().Any()) continue;   // leaf modules only (norms, embeddings, heads, float linears)
            foreach (var (name, p) in own)
                if (p.dtype is ScalarType.BFloat16 or ScalarType.Float16) ReplaceParameter(module, name, p);
        }
        model.GradientCheckpointing = useGradientCheckpointing;
        return model;
    }

    // PyTorch's `param.data = param.data.float()`: TorchSharp can neither change a Parameter's dtype in place nor
    // re-register a name, so the registry entry and the module's backing field are swapped to a float32 copy.
    private static void ReplaceParameter(nn.Module module, string name, TorchSharp.Modules.Parameter old)
    {
        const System.Reflection.BindingFlags flags = System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance;
        var fresh = new TorchSharp.Modules.Parameter(old.detach().to(ScalarType.Float32).DetachFromDisposeScope(), requires_grad: false);
        fresh.DetachFromDisposeScope();
        var registry = typeof(nn.Module).GetField("_internal_params", flags)!.GetValue(module)!;
        registry.GetType().GetMethod("Remove", [typeof(string)])!.Invoke(registry, [name]);
        module.register_parameter(name, fresh);
        for (var t = module.GetType(); t is not null && t != typeof(nn.Module); t = t.BaseType)
            foreach (var f in t.GetFields(flags | System.Reflection.BindingFlags.DeclaredOnly))
                if (ReferenceEquals(f.GetValue(module), old)) f.SetValue(module, fresh);
        old.Dispose();
    }
}
