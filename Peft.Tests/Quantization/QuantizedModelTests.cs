using System.Text;
using System.Text.Json.Nodes;
using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Nn;
using Peft.Training.Quantization;
using Peft.Training.Tuners;
using Peft.Training.Tuners.AdaLora;
using Peft.Training.Tuners.Ia3;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Quantization;

/// <summary>Quantised loading, the bitsandbytes folder layout, and the PEFT methods on quantised layers (tiny golden Llama).</summary>
public class QuantizedModelTests
{
    private static readonly string[] Linears = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    private static PretrainedModel Load(QuantMethod m, bool dq = false, string? dir = null, ScalarType? dtype = null)
    {
        var model = AutoModel.FromPretrained(dir ?? GoldenData.Dir("llama_base"),
            new ModelLoadOptions { DType = dtype, Quantization = new QuantizationConfig { Method = m, DoubleQuant = dq } });
        model.eval();
        return model;
    }

    private static bool BitEqual(Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && (a == b).all().item<bool>();

    private static Tensor Ids() => torch.tensor(new long[] { 1, 5, 17, 33, 64, 2, 99, 7, 8, 120, 3, 4 }).view(2, 6);

    [Theory]
    [InlineData(QuantMethod.Nf4, false)]
    [InlineData(QuantMethod.Nf4, true)]
    [InlineData(QuantMethod.Fp4, false)]
    [InlineData(QuantMethod.Int8, false)]
    public void LoadQuantisesBackboneLinearsOnlyAndForwardEqualsTheDequantisedModel(QuantMethod m, bool dq)
    {
        using var scope = torch.NewDisposeScope();
        using var q = Load(m, dq);
        using var fp = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
        fp.eval();
        var quantised = QuantizedLoading.QuantisedLayers(q);
        Assert.Equal(2 * Linears.Length, quantised.Count);
        Assert.All(quantised.Keys, k => Assert.StartsWith("model.layers.", k));
        Assert.Equal(ScalarType.Float32, q.get_parameter("lm_head.weight")!.dtype);
        Assert.Equal(ScalarType.Float32, q.get_parameter("model.embed_tokens.weight")!.dtype);
        Assert.Equal(m == QuantMethod.Int8 ? ScalarType.Int8 : ScalarType.Byte, q.get_parameter("model.layers.0.self_attn.q_proj.weight")!.dtype);
        Assert.Equal(m.ToString().ToLowerInvariant() == "int8", (bool)q.Config.Json["quantization_config"]!["load_in_8bit"]!);

        // Same counts as the float model (a packed 4-bit weight counts its logical size, as PEFT does).
        using var peftQ = PeftModel.Create(q, new LoraConfig { R = 4 });
        using var peftF = PeftModel.Create(fp, new LoraConfig { R = 4 });
        Assert.Equal(peftF.GetNbTrainableParameters(), peftQ.GetNbTrainableParameters());

        // The float model with each weight replaced by its dequantised value gives the same logits.
        using (torch.no_grad())
            foreach (var (path, lin) in quantised)
                ((LinearLayer)fp.named_modules().First(x => x.name == path).module).weight.copy_(lin.Quantized!.Dequantize(ScalarType.Float32));
        using var ids = Ids();
        using var a = peftQ.Forward(new ForwardArgs { InputIds = ids });
        using var b = peftF.Forward(new ForwardArgs { InputIds = ids });
        GoldenData.AssertClose(b.Logits, a.Logits, 1e-4, "quantised vs dequantised-float logits");
    }

    [Fact]
    public void QuantisedWeightsAndLogitsStayCloseToFloat()
    {
        using var scope = torch.NewDisposeScope();
        using var fp = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
        fp.eval();
        var floats = fp.named_modules().Where(m => m.module is LinearLayer).ToDictionary(m => m.name, m => ((LinearLayer)m.module).weight);
        using var ids = Ids();
        using var reference = fp.Forward(new ForwardArgs { InputIds = ids });
        double spread = reference.Logits.std().item<float>();
        var logitError = new Dictionary<QuantMethod, double>();
        foreach (var (m, weightBound) in new[] { (QuantMethod.Int8, 0.01), (QuantMethod.Nf4, 0.12) })
        {
            using var q = Load(m);
            // Relative Frobenius error per weight: ~0.5/127 of the row range for int8, NF4's ~0.1 on normal weights.
            foreach (var (path, lin) in QuantizedLoading.QuantisedLayers(q))
            {
                using var deq = lin.Quantized!.Dequantize(ScalarType.Float32);
                double rel = ((deq - floats[path]).norm().item<float>()) / floats[path].norm().item<float>();
                Assert.True(rel < weightBound, $"{m} {path}: relative error {rel}");
            }
            using var o = q.Forward(new ForwardArgs { InputIds = ids });
            logitError[m] = (o.Logits - reference.Logits).pow(2).mean().sqrt().item<float>() / spread;
        }
        Assert.True(logitError[QuantMethod.Int8] < 0.02, $"int8 logit rmse / spread = {logitError[QuantMethod.Int8]}");
        Assert.True(logitError[QuantMethod.Int8] < logitError[QuantMethod.Nf4]);
    }

    [Theory]
    [InlineData(QuantMethod.Nf4, false)]
    [InlineData(QuantMethod.Nf4, true)]
    [InlineData(QuantMethod.Fp4, false)]
    [InlineData(QuantMethod.Int8, false)]
    public void SavedFolderHasTheBitsandbytesLayoutAndReloadsBitForBit(QuantMethod m, bool dq)
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        using var q = Load(m, dq);
        q.SavePretrained(tmp.Path);
        var cfg = JsonNode.Parse(File.ReadAllText(tmp["config.json"]))!["quantization_config"]!;
        Assert.Equal("bitsandbytes", (string)cfg["quant_method"]!);
        Assert.Equal(dq, (bool)cfg["bnb_4bit_use_double_quant"]!);
        using (var reader = CheckpointReader.OpenFolder(tmp.Path))
        {
            const string p = "model.layers.0.mlp.up_proj.";   // [176, 64]
            if (m == QuantMethod.Int8)
            {
                Assert.Equal(new long[] { 176, 64 }, reader.Entry(p + "weight").Shape);
                Assert.Equal(new long[] { 176 }, reader.Entry(p + "SCB").Shape);
                Assert.True(reader.Contains(p + "weight_format"));
            }
            else
            {
                string type = m == QuantMethod.Nf4 ? "nf4" : "fp4";
                Assert.Equal(new long[] { 176 * 64 / 2, 1 }, reader.Entry(p + "weight").Shape);
                Assert.Equal(new long[] { 16 }, reader.Entry(p + "weight.quant_map").Shape);
                Assert.Equal(new long[] { 176 }, reader.Entry(p + "weight.absmax").Shape);   // 11264 / 64 blocks
                using var state = reader.Load(p + "weight.quant_state.bitsandbytes__" + type);
                string json = Encoding.UTF8.GetString(state.data<byte>().ToArray());
                string head = $"{{\"quant_type\": \"{type}\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [176, 64]";
                Assert.StartsWith(head, json);
                if (dq)
                {
                    Assert.Contains("\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": ", json);
                    Assert.Equal(new long[] { 1 }, reader.Entry(p + "weight.nested_absmax").Shape);
                    Assert.Equal(new long[] { 256 }, reader.Entry(p + "weight.nested_quant_map").Shape);
                }
                else Assert.Equal(head + "}", json);
            }
            Assert.Equal("F32", reader.Entry("model.norm.weight").DType);
        }
        // config.json says quantised: a plain load reads it as such, without requantising.
        using var back = AutoModel.FromPretrained(tmp.Path);
        var before = QuantizedLoading.QuantisedLayers(q);
        var after = QuantizedLoading.QuantisedLayers(back);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (path, lin) in before)
        {
            using var w0 = lin.Quantized!.Dequantize(ScalarType.Float32);
            using var w1 = after[path].Quantized!.Dequantize(ScalarType.Float32);
            Assert.True(BitEqual(w0, w1), path);
        }
    }

    [Theory]
    [InlineData(0.012345679f, "e")]
    [InlineData(1f, "1.0")]
    [InlineData(1e-5f, "e-06")]
    [InlineData(-0.25f, "-0.25")]
    public void NestedOffsetIsWrittenAsPythonReprOfTheFloat32(float value, string mustContain)
    {
        // Python's repr(float(tensor.item())): the shortest text that reads back as the same double, "1.0" for
        // integral values, two-digit signed exponents.
        string s = BnbLayout.PythonFloat(value);
        Assert.Equal((double)value, double.Parse(s, System.Globalization.CultureInfo.InvariantCulture));
        if (mustContain != "e") Assert.Contains(mustContain, s);
        else Assert.DoesNotContain("e", s);
        Assert.DoesNotContain("E", s);
    }

    [Fact]
    public void QloraStepTrainsOnlyTheAdapterAndLeavesPackedWeightsAlone()
    {
        using var scope = torch.NewDisposeScope();
        var model = Load(QuantMethod.Nf4, dq: true);
        KbitTraining.PrepareForKbitTraining(model);
        model.train();
        using var peft = PeftModel.Create(model, new LoraConfig { R = 4, TargetModules = StringOrList.Of("q_proj", "v_proj", "down_proj") }, seed: 3);
        var packed = model.get_parameter("model.layers.0.self_attn.q_proj.weight")!.clone();
        var trainable = model.parameters().Where(p => p.requires_grad).ToList();
        Assert.NotEmpty(trainable);
        Assert.All(trainable, p => Assert.Equal(ScalarType.Float32, p.dtype));
        var opt = torch.optim.AdamW(trainable, 1e-2);
        using var ids = Ids();
        double first = 0, last = 0;
        for (int step = 0; step < 5; step++)
        {
            opt.zero_grad();
            using var o = peft.Forward(new ForwardArgs { InputIds = ids });
            var logits = o.Logits[.., ..^1].reshape(-1, 128);
            var loss = nn.functional.cross_entropy(logits, ids[.., 1..].reshape(-1));
            loss.backward();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
            opt.step();
        }
        Assert.True(last < first, $"loss {first} -> {last}");
        Assert.True(BitEqual(packed, model.get_parameter("model.layers.0.self_attn.q_proj.weight")!));
    }

    [Fact]
    public void AdapterGradientsThroughQuantisedLayersEqualThoseThroughTheirDequantisedFloatWeights()
    {
        using var scope = torch.NewDisposeScope();
        var quantised = Load(QuantMethod.Nf4);
        var dense = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
        using (torch.no_grad())
            foreach (var (name, layer) in QuantizedLoading.QuantisedLayers(quantised))
                dense.get_parameter(name + ".weight")!.copy_(layer.Quantized!.Dequantize(ScalarType.Float32));
        var config = () => new LoraConfig { R = 4, TargetModules = StringOrList.Of(Linears), InitLoraWeights = JsonValue.Create(false) };
        using var q = PeftModel.Create(quantised, config(), seed: 9);
        using var d = PeftModel.Create(dense, config(), seed: 9);
        using var ids = Ids();
        foreach (var (peft, model) in new[] { (q, quantised), (d, dense) })
        {
            model.train();
            using var o = peft.Forward(new ForwardArgs { InputIds = ids });
            o.Logits.pow(2).mean().backward();
        }
        var denseGrads = dense.named_parameters().Where(p => p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter.grad);
        var quantGrads = quantised.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        Assert.Equal(denseGrads.Count, quantGrads.Count);
        // Every adapter gets its gradient, the first layer's included (the backward passes through each quantised matmul).
        foreach (var (name, param) in quantGrads)
        {
            Assert.True(param.grad is not null && param.grad.abs().sum().item<float>() > 0, $"{name} has no gradient");
            GoldenData.AssertClose(denseGrads[name]!, param.grad!, 1e-5, name);
        }
    }

    public static TheoryData<string> Methods => new() { "lora", "dora", "adalora", "ia3" };

    private static PeftConfig ConfigFor(string method) => method switch
    {
        "lora" => new LoraConfig { R = 4, InitLoraWeights = JsonValue.Create(false) },
        "dora" => new LoraConfig { R = 4, UseDora = true, InitLoraWeights = JsonValue.Create(false) },
        "adalora" => new AdaLoraConfig { InitR = 4, TargetR = 2, TotalStep = 10, InitLoraWeights = JsonValue.Create(false) },
        _ => new Ia3Config { InitIa3Weights = false },
    };

    [Theory]
    [MemberData(nameof(Methods))]
    public void MethodsTrainOnQuantisedLayersAndMergeBackLossilyOrExactlyAfterDequantising(string method)
    {
        using var scope = torch.NewDisposeScope();
        var warnings = new List<string>();
        var saved = QuantizedLinear.Warn;
        QuantizedLinear.Warn = warnings.Add;
        try
        {
            using var ids = Ids();
            // Gradients reach the adapter through the quantised matmul.
            var model = Load(QuantMethod.Nf4);
            using var peft = PeftModel.Create(model, ConfigFor(method), seed: 5);
            model.train();
            using (var o = peft.Forward(new ForwardArgs { InputIds = ids })) o.Logits.pow(2).mean().backward();
            var trainable = model.parameters().Where(p => p.requires_grad).ToList();
            Assert.NotEmpty(trainable);
            Assert.Contains(trainable, p => p.grad is not null && p.grad.abs().sum().item<float>() > 0);
            model.eval();
            Tensor reference;
            using (torch.no_grad()) reference = peft.Forward(new ForwardArgs { InputIds = ids }).Logits.clone();

            // Merge into the 4-bit weights: requantised, so close but not equal, and a warning says so.
            using (var copy = Load(QuantMethod.Nf4))
            {
                using var p2 = PeftModel.Create(copy, ConfigFor(method), seed: 5);
                var merged = p2.MergeAndUnload();
                Assert.NotEmpty(warnings);
                Assert.Equal(2 * Linears.Length, QuantizedLoading.QuantisedLayers(merged).Count);
                using var o = merged.Forward(new ForwardArgs { InputIds = ids });
                double spread = reference.std().item<float>();
                double rmse = (o.Logits - reference).pow(2).mean().sqrt().item<float>();
                Assert.True(rmse < 0.25 * spread, $"requantised merge rmse {rmse} vs spread {spread}");
            }

            // Dequantise first, then merge_and_unload: a full-precision model with the same outputs.
            warnings.Clear();
            QuantizedLoading.Dequantize(model);
            Assert.Empty(QuantizedLoading.QuantisedLayers(model));
            Assert.Null(model.Config.Json["quantization_config"]);
            var full = peft.MergeAndUnload();
            Assert.Empty(warnings);
            using var f = full.Forward(new ForwardArgs { InputIds = ids });
            GoldenData.AssertClose(reference, f.Logits, 2e-4, method + " merged after dequantising");
        }
        finally
        {
            QuantizedLinear.Warn = saved;
        }
    }

    [Fact]
    public void PrepareForKbitTrainingFreezesAndUpcastsWhatIsNotQuantised()
    {
        using var scope = torch.NewDisposeScope();
        using var model = Load(QuantMethod.Nf4, dtype: ScalarType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, model.get_parameter("model.norm.weight")!.dtype);
        var lin = QuantizedLoading.QuantisedLayers(model)["model.layers.1.mlp.down_proj"];
        Assert.Equal(ScalarType.BFloat16, lin.ComputeDType);
        using var before = lin.Quantized!.Dequantize(ScalarType.Float32);
        KbitTraining.PrepareForKbitTraining(model);
        Assert.True(model.GradientCheckpointing);
        Assert.All(model.named_parameters(), p => Assert.False(p.parameter.requires_grad));
        Assert.All(model.named_parameters().Where(p => p.parameter.is_floating_point()),
            p => Assert.Equal(ScalarType.Float32, p.parameter.dtype));
        Assert.Equal(ScalarType.BFloat16, lin.ComputeDType);   // the matmul still runs in the compute dtype
        using var after = lin.Quantized!.Dequantize(ScalarType.Float32);
        Assert.True(BitEqual(before, after));
        using var ids = Ids();
        using var o = model.Forward(new ForwardArgs { InputIds = ids });
        Assert.Equal(ScalarType.Float32, o.Logits.dtype);
    }

    [Fact]
    public void Gpt2Conv1DWeightsAreQuantisedInOutInLayout()
    {
        using var scope = torch.NewDisposeScope();
        using var fp = AutoModel.FromPretrained(GoldenData.Dir("gpt2_base"));
        using var q = Load(QuantMethod.Int8, dir: GoldenData.Dir("gpt2_base"));
        fp.eval();
        var layers = QuantizedLoading.QuantisedLayers(q);
        Assert.Contains("transformer.h.0.attn.c_attn", layers.Keys);
        var c = layers["transformer.h.0.attn.c_attn"];
        Assert.False(c.FanInFanOut);
        var w = ((LinearLayer)fp.named_modules().First(m => m.name == "transformer.h.0.attn.c_attn").module).weight; // [in, out]
        using var deq = c.Quantized!.Dequantize(ScalarType.Float32);
        Assert.Equal(new[] { w.shape[1], w.shape[0] }, deq.shape);
        Assert.True((deq - w.t()).abs().max().item<float>() <= w.abs().max().item<float>() / 254 + 1e-6);
    }
}
