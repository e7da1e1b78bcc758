using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Peft.Training.IO;
using Peft.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Quantization;

/// <summary>
/// The state-dict layout transformers + bitsandbytes save quantised linear layers in (checked against bitsandbytes'
/// <c>QuantState.as_dict(packed=True)</c>, <c>Linear4bit._save_to_state_dict</c> and <c>Linear8bitLt</c>'s, read from
/// its public source):
/// 4-bit — <c>weight</c> (uint8 [n/2, 1]), <c>weight.absmax</c>, <c>weight.quant_map</c>, with double quantisation
/// <c>weight.nested_absmax</c> and <c>weight.nested_quant_map</c>, and <c>weight.quant_state.bitsandbytes__nf4</c>
/// (or <c>__fp4</c>): the UTF-8 bytes of <c>json.dumps</c> of the non-tensor fields (quant_type, blocksize, dtype,
/// shape, nested_blocksize, nested_dtype, nested_offset); 8-bit — <c>weight</c> (int8 [out, in]), <c>SCB</c> (float32
/// [out]) and <c>weight_format</c> (uint8 0 = row-major).
/// </summary>
public static class BnbLayout
{
    /// <summary>The tensors for one layer; <paramref name="prefix"/> is the module path plus a dot (e.g. <c>model.layers.0.mlp.up_proj.</c>).</summary>
    public static List<KeyValuePair<string, Tensor>> StateTensors(string prefix, QuantizedWeight q)
    {
        var list = new List<KeyValuePair<string, Tensor>>();
        void Add(string k, Tensor t) => list.Add(new(prefix + k, t));
        Add("weight", q.Packed.detach());
        if (q.Method == QuantMethod.Int8)
        {
            Add("SCB", q.Absmax.detach());
            Add("weight_format", torch.tensor((byte)0));
            return list;
        }
        Add("weight.absmax", q.Absmax.detach());
        Add("weight.quant_map", torch.tensor(q.Code.Length == 16 ? q.Code : QuantCodes.FourBit(q.Method)));
        if (q.NestedAbsmax is not null)
        {
            Add("weight.nested_absmax", q.NestedAbsmax.detach());
            Add("weight.nested_quant_map", torch.tensor(q.NestedCode));
        }
        string type = QuantizationConfig.MethodName(q.Method);
        Add("weight.quant_state.bitsandbytes__" + type, torch.tensor(Encoding.UTF8.GetBytes(QuantStateJson(q))));
        return list;
    }

    /// <summary>The packed quant_state JSON, spelled as Python's <c>json.dumps</c> writes it.</summary>
    public static string QuantStateJson(QuantizedWeight q)
    {
        var sb = new StringBuilder();
        sb.Append("{\"quant_type\": \"").Append(QuantizationConfig.MethodName(q.Method)).Append("\", ");
        sb.Append("\"blocksize\": ").Append(q.BlockSize).Append(", ");
        sb.Append("\"dtype\": \"").Append(DTypes.ToHfName(q.OriginalDType)).Append("\", ");
        sb.Append("\"shape\": [").Append(string.Join(", ", q.Shape)).Append(']');
        if (q.NestedAbsmax is not null)
        {
            sb.Append(", \"nested_blocksize\": ").Append(q.NestedBlockSize);
            sb.Append(", \"nested_dtype\": \"float32\"");
            sb.Append(", \"nested_offset\": ").Append(PythonFloat(q.Offset));
        }
        return sb.Append('}').ToString();
    }

    /// <summary>Python's repr of a float32 widened to double (what <c>tensor.item()</c> then json.dumps produce).</summary>
    internal static string PythonFloat(float f)
    {
        string s = ((double)f).ToString("R", CultureInfo.InvariantCulture).Replace("E", "e");
        if (s.Contains('e'))
        {
            // Python pads the exponent to two digits and keeps the sign: 1e-05, 1.5e+20.
            int e = s.IndexOf('e');
            string mant = s[..e], exp = s[(e + 1)..];
            char sign = exp[0] == '-' ? '-' : '+';
            exp = exp.TrimStart('+', '-').PadLeft(2, '0');
            return mant + "e" + sign + exp;
        }
        return s.Contains('.') || s.Contains("NaN") || s.Contains("Infinity") ? s : s + ".0";
    }

    /// <summary>True when the checkpoint holds a bitsandbytes-quantised weight under <paramref name="prefix"/>.</summary>
    public static bool IsQuantised(CheckpointReader reader, string prefix) =>
        reader.Contains(prefix + "SCB") || reader.Contains(prefix + "weight.absmax");

    /// <summary>Reads one quantised layer onto <paramref name="device"/>; errors name the file and key.</summary>
    public static QuantizedWeight Read(CheckpointReader reader, string prefix, Device device, string source)
    {
        if (reader.Contains(prefix + "SCB"))
        {
            var w = reader.Load(prefix + "weight", device);
            if (w.dtype != ScalarType.Int8 || w.dim() != 2)
                throw new ModelLoadException($"{source}: '{prefix}weight' must be a 2-D int8 tensor next to '{prefix}SCB' (got {w.dtype} [{string.Join(", ", w.shape)}])");
            var scb = reader.Load(prefix + "SCB", device, ScalarType.Float32);
            if (scb.numel() != w.shape[0])
                throw new ModelLoadException($"{source}: '{prefix}SCB' has {scb.numel()} values but the weight has {w.shape[0]} rows");
            return new QuantizedWeight { Method = QuantMethod.Int8, Shape = w.shape, Packed = w, Absmax = scb };
        }
        string stateKey = reader.Keys.FirstOrDefault(k => k.StartsWith(prefix + "weight.quant_state.bitsandbytes__", StringComparison.Ordinal))
            ?? throw new ModelLoadException($"{source}: '{prefix}weight.absmax' is present but '{prefix}weight.quant_state.bitsandbytes__nf4|fp4' is missing");
        JsonObject state;
        using (var bytes = reader.Load(stateKey))
        {
            try { state = JsonNode.Parse(Encoding.UTF8.GetString(bytes.data<byte>().ToArray()))!.AsObject(); }
            catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
            { throw new ModelLoadException($"{source}: '{stateKey}' is not a JSON quant state: {e.Message}"); }
        }
        string Str(string k) => state[k]?.GetValue<string>() ?? throw new ModelLoadException($"{source}: '{stateKey}' lacks '{k}'");
        int Int(string k) => state[k]?.GetValue<int>() ?? throw new ModelLoadException($"{source}: '{stateKey}' lacks '{k}'");
        var method = Str("quant_type") switch
        {
            "nf4" => QuantMethod.Nf4,
            "fp4" => QuantMethod.Fp4,
            var t => throw new ModelLoadException($"{source}: '{stateKey}' has quant_type '{t}' (expected nf4 or fp4)"),
        };
        var shape = (state["shape"] as JsonArray ?? throw new ModelLoadException($"{source}: '{stateKey}' lacks 'shape'"))
            .Select(n => n!.GetValue<long>()).ToArray();
        var packed = reader.Load(prefix + "weight", device);
        long n = shape.Aggregate(1L, (a, b) => a * b);
        if (packed.dtype != ScalarType.Byte || packed.numel() != (n + 1) / 2)
            throw new ModelLoadException($"{source}: '{prefix}weight' must hold {(n + 1) / 2} uint8 values for shape [{string.Join(", ", shape)}] (got {packed.dtype}, {packed.numel()})");
        float[] code = Floats(reader, prefix + "weight.quant_map", 16, source);
        var absmax = reader.Load(prefix + "weight.absmax", device);
        bool nested = reader.Contains(prefix + "weight.nested_absmax");
        return new QuantizedWeight
        {
            Method = method, Shape = shape, BlockSize = Int("blocksize"), OriginalDType = DTypes.FromHfName(Str("dtype")),
            Packed = packed, Absmax = absmax, Code = code,
            NestedAbsmax = nested ? reader.Load(prefix + "weight.nested_absmax", device, ScalarType.Float32) : null,
            NestedCode = nested ? Floats(reader, prefix + "weight.nested_quant_map", 256, source) : QuantCodes.Dynamic8Bit,
            NestedBlockSize = nested ? Int("nested_blocksize") : 256,
            Offset = nested ? (float)(state["nested_offset"]?.GetValue<double>() ?? throw new ModelLoadException($"{source}: '{stateKey}' lacks 'nested_offset'")) : 0f,
        };
    }

    private static float[] Floats(CheckpointReader reader, string key, int count, string source)
    {
        if (!reader.Contains(key)) throw new ModelLoadException($"{source}: '{key}' is missing");
        using var t = reader.Load(key, null, ScalarType.Float32);
        if (t.numel() != count) throw new ModelLoadException($"{source}: '{key}' has {t.numel()} values (expected {count})");
        return t.data<float>().ToArray();
    }
}
