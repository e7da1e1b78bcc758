using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Peft.Training.IO;
using Peft.Training.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.Bert;

/// <summary>What an import wrote.</summary>
public sealed record OnnxBertImportResult(string OutputDir, int NumLayers, int HiddenSize, int NumHeads, int IntermediateSize,
    int VocabSize, long ParameterCount, bool HasPooler, IReadOnlyList<string> OnnxOutputs);

/// <summary>
/// Turns a PyTorch ONNX export of a BERT encoder (e.g. sentence-transformers' all-MiniLM-L6-v2) plus its vocab.txt
/// into a Hugging Face folder: config.json (model_type bert, BertModel), model.safetensors, tokenizer.json,
/// tokenizer_config.json, vocab.txt. The exporter keeps biases and norms under their PyTorch names but stores the
/// projection weights as anonymous MatMul initializers laid out [in, out]; each is named after the bias its MatMul
/// output is added to (falling back to the per-layer order Q, K, V, attention-out, FFN-in, FFN-out) and transposed
/// to HF's [out, in].
/// </summary>
public static class OnnxBertImporter
{
    private static readonly string[] LayerMatMuls =
        ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"];

    private static readonly Regex HfName = new(
        @"^(embeddings\.(word_embeddings|position_embeddings|token_type_embeddings)\.weight|embeddings\.LayerNorm\.(weight|bias)" +
        @"|encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)\.(weight|bias)" +
        @"|encoder\.layer\.\d+\.(attention\.output|output)\.LayerNorm\.(weight|bias)|pooler\.dense\.(weight|bias))$", RegexOptions.CultureInvariant);

    /// <param name="numHeads">Attention heads; null = read from the graph's reshape constants.</param>
    public static OnnxBertImportResult Import(byte[] onnxModel, string vocabText, string outDir, int? numHeads = null, bool lowercase = true)
    {
        var graph = OnnxGraph.Parse(onnxModel);
        var weights = MapWeights(graph);
        var hp = Hyperparameters(graph, weights, numHeads);
        var vocab = WordPieceTokenizerFiles.ReadVocab(vocabText);
        if (vocab.Count != hp.Vocab)
            throw new PeftUserException($"vocab.txt has {vocab.Count} tokens but the ONNX word embeddings have {hp.Vocab} rows", UserErrorKind.Invalid);
        Directory.CreateDirectory(outDir);
        bool pooler = weights.ContainsKey("pooler.dense.weight") && weights.ContainsKey("pooler.dense.bias");
        long count = WriteWeights(Path.Combine(outDir, "model.safetensors"), weights, pooler);
        WriteConfig(Path.Combine(outDir, "config.json"), hp, vocab.IndexOf("[PAD]"));
        WordPieceTokenizerFiles.Write(outDir, vocab, lowercase, hp.MaxPositions);
        return new OnnxBertImportResult(outDir, hp.Layers, hp.Hidden, hp.Heads, hp.Intermediate, hp.Vocab, count, pooler, graph.Outputs);
    }

    /// <summary>HF name → (initializer, stored transposed).</summary>
    private static Dictionary<string, (OnnxTensor Tensor, bool Transpose)> MapWeights(OnnxGraph graph)
    {
        var map = new Dictionary<string, (OnnxTensor, bool)>(StringComparer.Ordinal);
        foreach (var (name, t) in graph.Initializers)
        {
            string hf = name.StartsWith("bert.", StringComparison.Ordinal) ? name[5..] : name;
            if (HfName.IsMatch(hf)) map[hf] = (t, false);
        }
        var matmuls = graph.Nodes
            .Where(n => n.OpType == "MatMul" && n.Inputs.Count == 2 && graph.Initializers.TryGetValue(n.Inputs[1], out var w)
                && w.Dims.Length == 2 && w.DataType == OnnxTensor.Float && !map.Values.Any(v => ReferenceEquals(v.Item1, w)))
            .ToList();
        var byBias = new Dictionary<string, (OnnxTensor, bool)>(StringComparer.Ordinal);
        foreach (var mm in matmuls)
        {
            var bias = graph.Consumers(mm.Outputs[0]).Where(n => n.OpType == "Add")
                .SelectMany(n => n.Inputs).FirstOrDefault(i => i.EndsWith(".bias", StringComparison.Ordinal) && map.ContainsKey(StripBert(i)));
            if (bias is not null) byBias[StripBert(bias)[..^5] + ".weight"] = (graph.Initializers[mm.Inputs[1]], true);
        }
        if (byBias.Count == matmuls.Count)
            foreach (var (k, v) in byBias) map[k] = v;
        else
        {
            // Exports that fold the bias into something else: fall back to the exporter's node order.
            if (matmuls.Count % LayerMatMuls.Length != 0)
                throw new PeftUserException($"expected {LayerMatMuls.Length} weight MatMuls per layer, found {matmuls.Count} in total", UserErrorKind.Invalid);
            for (int i = 0; i < matmuls.Count; i++)
                map[$"encoder.layer.{i / LayerMatMuls.Length}.{LayerMatMuls[i % LayerMatMuls.Length]}.weight"] = (graph.Initializers[matmuls[i].Inputs[1]], true);
        }
        return map;
    }

    private static string StripBert(string name) => name.StartsWith("bert.", StringComparison.Ordinal) ? name[5..] : name;

    private sealed record Shape(int Vocab, int Hidden, int Layers, int Heads, int Intermediate, int MaxPositions, int TypeVocab, double Eps, string Act);

    private static Shape Hyperparameters(OnnxGraph graph, Dictionary<string, (OnnxTensor Tensor, bool Transpose)> w, int? numHeads)
    {
        long[] Dims(string name) => w.TryGetValue(name, out var t) ? t.Tensor.Dims
            : throw new PeftUserException($"the ONNX graph has no initializer for BERT weight '{name}' (is it a BERT encoder export?)", UserErrorKind.Invalid);
        var words = Dims("embeddings.word_embeddings.weight");
        int hidden = (int)words[1];
        int layers = w.Keys.Select(k => Regex.Match(k, @"^encoder\.layer\.(\d+)\.")).Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) + 1).DefaultIfEmpty(0).Max();
        if (layers == 0) throw new PeftUserException("the ONNX graph has no encoder layers", UserErrorKind.Invalid);
        int intermediate = (int)Dims("encoder.layer.0.intermediate.dense.bias")[0];
        // Every weight must be present with HF's shape, or the model would load garbage.
        for (int l = 0; l < layers; l++)
        {
            string p = $"encoder.layer.{l}.";
            foreach (var (name, shape) in new (string, long[])[]
            {
                ("attention.self.query.weight", [hidden, hidden]), ("attention.self.key.weight", [hidden, hidden]),
                ("attention.self.value.weight", [hidden, hidden]), ("attention.output.dense.weight", [hidden, hidden]),
                ("intermediate.dense.weight", [intermediate, hidden]), ("output.dense.weight", [hidden, intermediate]),
            })
            {
                var dims = Dims(p + name);
                var hfShape = w[p + name].Transpose ? dims.Reverse().ToArray() : dims;
                if (!hfShape.SequenceEqual(shape))
                    throw new PeftUserException($"ONNX weight for '{p + name}' has shape [{string.Join(", ", hfShape)}], expected [{string.Join(", ", shape)}]", UserErrorKind.Invalid);
            }
        }
        int heads = numHeads ?? DetectHeads(graph, hidden)
            ?? throw new PeftUserException("could not read the number of attention heads from the graph; pass it explicitly (--num-heads)", UserErrorKind.Invalid);
        if (heads <= 0 || hidden % heads != 0) throw new ArgumentException($"num_attention_heads {heads} does not divide hidden size {hidden}");
        return new Shape((int)words[0], hidden, layers, heads, intermediate, (int)Dims("embeddings.position_embeddings.weight")[0],
            (int)Dims("embeddings.token_type_embeddings.weight")[0], DetectEps(graph), DetectActivation(graph));
    }

    /// <summary>The query projection is reshaped to [batch, seq, heads, head_dim]: find heads·head_dim = hidden in that shape.</summary>
    private static int? DetectHeads(OnnxGraph graph, int hidden)
    {
        var addQ = graph.Nodes.FirstOrDefault(n => n.OpType == "Add" && n.Inputs.Any(i => StripBert(i) == "encoder.layer.0.attention.self.query.bias"));
        var reshape = addQ is null ? null : graph.Consumers(addQ.Outputs[0]).FirstOrDefault(n => n.OpType == "Reshape");
        if (reshape is null || reshape.Inputs.Count < 2) return null;
        var values = new List<long>();
        if (graph.ConstantValue(reshape.Inputs[1]) is { } direct) values.AddRange(direct.ToInt64s());
        else if (graph.Producer(reshape.Inputs[1]) is { OpType: "Concat" } concat)
            foreach (var input in concat.Inputs)
                values.AddRange(graph.ConstantValue(input)?.ToInt64s() ?? [-1]);
        for (int i = 0; i + 1 < values.Count; i++)
            if (values[i] > 0 && values[i + 1] > 0 && values[i] * values[i + 1] == hidden) return (int)values[i];
        return null;
    }

    /// <summary>LayerNorm epsilon: a fused LayerNormalization's attribute, else the constant added before the first Sqrt.</summary>
    private static double DetectEps(OnnxGraph graph)
    {
        if (graph.Nodes.FirstOrDefault(n => n.OpType == "LayerNormalization") is { } ln && ln.NumberAttributes.TryGetValue("epsilon", out var e))
            return Round(e);
        var add = graph.Nodes.FirstOrDefault(n => n.OpType == "Sqrt") is { } sqrt ? graph.Producer(sqrt.Inputs[0]) : null;
        if (add is { OpType: "Add" })
            foreach (var input in add.Inputs)
                if (graph.ConstantValue(input) is { DataType: OnnxTensor.Float, ElementCount: 1 } c) return Round(c.ToFloats()[0]);
        return 1e-12;
    }

    /// <summary>The float32 constant printed shortest (1e-12, not 9.999999960041972e-13), as config.json had it.</summary>
    private static double Round(double v) => double.Parse(((float)v).ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    private static string DetectActivation(OnnxGraph graph)
    {
        if (graph.Nodes.Any(n => n.OpType is "Erf" or "Gelu")) return "gelu";
        throw new PeftUserException("could not identify the feed-forward activation (expected exact GELU via Erf); only BERT exports with hidden_act 'gelu' are supported");
    }

    private static long WriteWeights(string path, Dictionary<string, (OnnxTensor Tensor, bool Transpose)> w, bool pooler)
    {
        var tensors = new List<KeyValuePair<string, Tensor>>();
        try
        {
            foreach (var (name, (t, transpose)) in w.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                if (!pooler && name.StartsWith("pooler.", StringComparison.Ordinal)) continue;
                using var raw = torch.tensor(t.ToFloats(), t.Dims, ScalarType.Float32);
                tensors.Add(new(name, transpose ? raw.t().contiguous() : raw.clone()));
            }
            Safetensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
            return tensors.Sum(kv => kv.Value.numel());
        }
        finally
        {
            foreach (var kv in tensors) kv.Value.Dispose();
        }
    }

    private static void WriteConfig(string path, Shape s, int padId)
    {
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("BertModel"),
            ["attention_probs_dropout_prob"] = 0.1,
            ["classifier_dropout"] = null,
            ["hidden_act"] = s.Act,
            ["hidden_dropout_prob"] = 0.1,
            ["hidden_size"] = s.Hidden,
            ["initializer_range"] = 0.02,
            ["intermediate_size"] = s.Intermediate,
            ["layer_norm_eps"] = s.Eps,
            ["max_position_embeddings"] = s.MaxPositions,
            ["model_type"] = "bert",
            ["num_attention_heads"] = s.Heads,
            ["num_hidden_layers"] = s.Layers,
            ["pad_token_id"] = Math.Max(padId, 0),
            ["position_embedding_type"] = "absolute",
            ["torch_dtype"] = "float32",
            ["type_vocab_size"] = s.TypeVocab,
            ["vocab_size"] = s.Vocab,
        };
        AtomicFile.WriteAllText(path, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }
}
