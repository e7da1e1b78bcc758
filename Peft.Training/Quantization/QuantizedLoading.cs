using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Training.Quantization;

/// <summary>
/// Loads a model with quantised linear weights, the way transformers does with a <c>BitsAndBytesConfig</c>: every
/// Linear/Conv1D of the backbone is quantised as it is read from the safetensors (one float weight in memory at a
/// time); embeddings, norms, the LM head and task heads stay in the model dtype. A folder saved in bitsandbytes'
/// layout is read as it is (no requantisation).
/// </summary>
public static class QuantizedLoading
{
    /// <summary>Linear layers a quantised load converts: all but the output head, task heads, tied layers and skip_modules.</summary>
    public static Dictionary<string, LinearLayer> Targets(PretrainedModel model, QuantizationConfig q)
    {
        var heads = TaskHeads.ModuleNames(model.Task).ToList();
        if (model.OutputEmbeddingName is { } head) heads.Add(head);
        heads.AddRange(q.SkipModules);
        var tied = model.TiedParameterNames;
        var result = new Dictionary<string, LinearLayer>();
        foreach (var (path, module) in model.named_modules())
        {
            if (module is not LinearLayer lin || path.Length == 0) continue;
            bool skipped = heads.Any(h => path == h || path.StartsWith(h + ".", StringComparison.Ordinal) || path.EndsWith("." + h, StringComparison.Ordinal));
            if (skipped || tied.Contains(path + ".weight")) continue;
            result[path] = lin;
        }
        return result;
    }

    /// <summary>The quantised linear layers of a model by module path.</summary>
    public static Dictionary<string, LinearLayer> QuantisedLayers(nn.Module model) =>
        model.named_modules().Where(m => m.module is LinearLayer { Quantized: not null })
            .ToDictionary(m => m.name, m => (LinearLayer)m.module);

    internal static PretrainedModel Load(string modelDir, ModelConfig config, ModelLoadOptions options, QuantizationConfig q)
    {
        NativeHeap.FixMmapThreshold();
        var target = options.Device ?? torch.CPU;
        // Built on the CPU with uninitialised storage: pages of linear weights are never touched before they are
        // replaced by their quantised form, so the float model is never resident.
        var model = AutoModel.FromConfig(config, options with { Device = torch.CPU, Quantization = null });
        try
        {
            var compute = q.ComputeDType ?? model.DType;
            var layers = Targets(model, q);
            using var reader = CheckpointReader.OpenFolder(modelDir);
            model.LoadWeights(reader, modelDir, (name, key, p) =>
            {
                if (!name.EndsWith(".weight", StringComparison.Ordinal) || !layers.TryGetValue(name[..^7], out var lin)) return false;
                string prefix = key[..^6];
                QuantizedWeight qw;
                if (BnbLayout.IsQuantised(reader, prefix))
                {
                    qw = BnbLayout.Read(reader, prefix, target, modelDir);
                    if (qw.Method != q.Method)
                        throw new ModelLoadException($"{modelDir}: '{key}' is stored as {QuantizationConfig.MethodName(qw.Method)}, not {QuantizationConfig.MethodName(q.Method)}");
                }
                else
                {
                    var entry = reader.Entry(key);
                    if (!entry.Shape.SequenceEqual(p.shape))
                        throw new ModelLoadException($"{modelDir}: weight '{key}' has shape [{string.Join(", ", entry.Shape)}] but the model expects [{string.Join(", ", p.shape)}]");
                    using var w = reader.Load(key, target, p.dtype);
                    using var outIn = lin.FanInFanOut ? w.t() : w.alias();
                    qw = QuantizedWeight.Quantize(outIn, q.Method, q.DoubleQuant);
                }
                lin.SetQuantized(qw, compute);
                return true;
            });
            model.Config.Json["quantization_config"] = q.ToJson(compute);
            if (target.type != DeviceType.CPU) model.MoveTo(target);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Replaces every quantised weight by its dequantised float copy (in <paramref name="dtype"/>, default the compute
    /// dtype) and drops <c>quantization_config</c>: the model becomes a plain full-precision one, e.g. before merging
    /// adapters exactly and saving a full-precision folder.
    /// </summary>
    public static void Dequantize(PretrainedModel model, ScalarType? dtype = null)
    {
        using var noGrad = torch.no_grad();
        foreach (var lin in QuantisedLayers(model).Values)
        {
            using var w = lin.Quantized!.Dequantize(dtype ?? lin.ComputeDType);
            lin.SetFloatWeight(w);
        }
        model.Config.Json.Remove("quantization_config");
    }

    /// <summary>Bytes held by the model's base weights: parameters and quantisation buffers, each tensor once.</summary>
    public static long BaseWeightBytes(PretrainedModel model)
    {
        long total = model.UniqueNamedParameters().Sum(p => p.Param.numel() * p.Param.ElementSize);
        foreach (var lin in QuantisedLayers(model).Values)
        {
            var q = lin.Quantized!;
            total += q.StorageBytes - q.Packed.numel() * q.Packed.ElementSize;
        }
        return total;
    }
}
