using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Models;

/// <summary>T5 behaviour beyond one forward pass: decoder KV cache, injected prefixes, masks, save/load, init, config errors.</summary>
public class T5ModelFeatureTests
{
    private static PretrainedModel Load(string caseName = "t5_base")
    {
        var model = AutoModel.FromPretrained(GoldenData.Dir(caseName));
        model.eval();
        return model;
    }

    private static Tensor Logits(PretrainedModel m, ForwardArgs args)
    {
        using var noGrad = torch.no_grad();
        using var o = m.Forward(args);
        return o.Logits.clone();
    }

    /// <summary>Teacher-forces decoder_input_ids one token at a time through the cache, reusing the encoder output.</summary>
    private static Tensor Incremental(PretrainedModel model, Tensor ids, Tensor mask, Tensor decoderIds, KvCache cache, Tensor? decoderMask = null)
    {
        using var noGrad = torch.no_grad();
        Tensor? encoded = null;
        var steps = new List<Tensor>();
        long past = cache.Length;
        for (long j = 0; j < decoderIds.shape[1]; j++)
        {
            using var o = model.Forward(new ForwardArgs
            {
                InputIds = encoded is null ? ids : null,
                EncoderHiddenStates = encoded,
                AttentionMask = mask,
                DecoderInputIds = decoderIds.narrow(1, j, 1),
                DecoderAttentionMask = decoderMask?.narrow(1, 0, past + j + 1),
                Cache = cache,
            });
            encoded ??= o.EncoderLastHiddenState!.clone();
            steps.Add(o.Logits.clone());
        }
        return torch.cat(steps, 1);
    }

    [Theory]
    [InlineData("t5_base")]
    [InlineData("mt5_base")]
    public void CachedDecodingEqualsOneFullForward(string caseName)
    {
        using var scope = torch.NewDisposeScope();
        using var model = Load(caseName);
        var e = GoldenData.Expected(caseName);
        using var cache = new KvCache(model.NumDecoderLayers);
        var stepped = Incremental(model, e["input_ids"], e["attention_mask"], e["decoder_input_ids"], cache);
        GoldenData.AssertClose(e["logits"], stepped, GoldenAdapterChecks.Tolerance(caseName, e["logits"]), "incremental logits");
        Assert.Equal(5, cache.Length);
        // Cross-attention keys/values were computed once from the 7 encoder positions and kept.
        Assert.Equal(7, cache.CrossAttention!.Length);
    }

    [Fact]
    public void InjectedDecoderPrefixReproducesPeftPrefixTuning()
    {
        // PEFT 0.10 on a seq2seq model doubles the 2L prefix blocks to 4L (self- and cross-attention) and splits them by 4:
        // layer i self-attention key/value = blocks 4i, 4i+1 (mod 2L) of prompt_embeddings viewed [T, 2L, heads, d_kv].
        // Cross-attention prefixes are ignored by transformers (5 != encoder length), and the encoder gets none.
        using var scope = torch.NewDisposeScope();
        using var model = Load();
        var e = GoldenData.Expected("t5_prefix_tuning");
        var p = Safetensors.Load(Path.Combine(GoldenData.Dir("t5_prefix_tuning"), "adapter_model.safetensors"))["prompt_embeddings"];
        int layers = model.NumLayers;
        long t = p.shape[0], b = e["input_ids"].shape[0];
        var blocks = p.view(t, 2 * layers, model.NumKeyValueHeads, model.HeadDim);
        KvCache Prefixed()
        {
            var cache = new KvCache(model.NumDecoderLayers);
            for (int i = 0; i < model.NumDecoderLayers; i++)
            {
                Tensor Block(int j) => blocks.select(1, j % (2 * layers)).permute(1, 0, 2).unsqueeze(0).expand(b, -1, -1, -1);
                cache.Set(i, Block(4 * i), Block(4 * i + 1));
            }
            return cache;
        }
        var args = new ForwardArgs { InputIds = e["input_ids"], AttentionMask = e["attention_mask"], DecoderInputIds = e["decoder_input_ids"] };
        using (var cache = Prefixed())
            GoldenData.AssertClose(e["logits"], Logits(model, new ForwardArgs
            {
                InputIds = args.InputIds, AttentionMask = args.AttentionMask, DecoderInputIds = args.DecoderInputIds, Cache = cache,
            }), 1e-4, "prefix logits");
        // The same through step-by-step decoding, with a decoder mask covering prefix + past + current.
        using (var cache = Prefixed())
        {
            var decoderMask = torch.ones(b, t + 5, ScalarType.Int64);
            var stepped = Incremental(model, e["input_ids"], e["attention_mask"], e["decoder_input_ids"], cache, decoderMask);
            GoldenData.AssertClose(e["logits"], stepped, 1e-4, "incremental prefix logits");
        }
        GoldenData.AssertClose(e["base_logits"], Logits(model, args), 1e-4, "without prefix");
    }

    [Fact]
    public void DecoderMaskMayCoverOnlyTheNewTokensAndMasksKeys()
    {
        using var scope = torch.NewDisposeScope();
        using var model = Load();
        var e = GoldenData.Expected("t5_base");
        var (ids, mask, dec) = (e["input_ids"], e["attention_mask"], e["decoder_input_ids"]);
        using var noGrad = torch.no_grad();
        using var cache = new KvCache(model.NumDecoderLayers);
        using (model.Forward(new ForwardArgs { InputIds = ids, AttentionMask = mask, DecoderInputIds = dec.narrow(1, 0, 4), Cache = cache })) { }
        // A [batch, 1] mask for the 5th token means "past all visible".
        var last = Logits(model, new ForwardArgs
        {
            InputIds = ids, AttentionMask = mask, DecoderInputIds = dec.narrow(1, 4, 1), Cache = cache,
            DecoderAttentionMask = torch.ones(2, 1, ScalarType.Int64),
        });
        GoldenData.AssertClose(e["logits"].narrow(1, 4, 1), last, 1e-4, "last step");
        // Masking decoder keys changes the result; an impossible mask length is rejected.
        var decoderMask = torch.ones(2, 5, ScalarType.Int64);
        decoderMask[0, 1] = torch.tensor(0L);
        var masked = Logits(model, new ForwardArgs { InputIds = ids, AttentionMask = mask, DecoderInputIds = dec, DecoderAttentionMask = decoderMask });
        Assert.True(GoldenData.MaxAbsDiff(e["logits"][0], masked[0]) > 1e-3);
        GoldenData.AssertClose(e["logits"][1], masked[1], 1e-4, "unmasked row");
        var bad = Assert.Throws<ArgumentException>(() => model.Forward(new ForwardArgs
        {
            InputIds = ids, AttentionMask = mask, DecoderInputIds = dec, DecoderAttentionMask = torch.ones(2, 3, ScalarType.Int64),
        }));
        Assert.Contains("decoder attention mask", bad.Message);
        Assert.Contains("DecoderInputIds", Assert.Throws<ArgumentException>(() => model.Forward(new ForwardArgs { InputIds = ids })).Message);
    }

    [Theory]
    [InlineData("t5_base", false)]
    [InlineData("mt5_base", true)]
    public void SaveAndReloadKeepsTheHeadLayout(string caseName, bool separateHead)
    {
        using var scope = torch.NewDisposeScope();
        using var model = Load(caseName);
        Assert.Equal(separateHead ? [] : new[] { "lm_head.weight" }, model.TiedParameterNames);
        using var dir = new TempDir();
        model.SavePretrained(dir.Path);
        using (var file = SafetensorsFile.Open(Path.Combine(dir.Path, "model.safetensors")))
        {
            var names = file.Entries.Select(x => x.Name).ToList();
            Assert.Equal(separateHead, names.Contains("lm_head.weight"));
            Assert.Contains("shared.weight", names);
            Assert.DoesNotContain(names, n => n.Contains("embed_tokens"));
            Assert.Single(names, n => n.StartsWith("encoder.", StringComparison.Ordinal) && n.Contains("relative_attention_bias"));
            Assert.Equal(separateHead ? 52 : 47, names.Count);   // as transformers' save_pretrained wrote the golden files
        }
        using var reloaded = AutoModel.FromPretrained(dir.Path);
        reloaded.eval();
        var e = GoldenData.Expected(caseName);
        var args = new ForwardArgs { InputIds = e["input_ids"], AttentionMask = e["attention_mask"], DecoderInputIds = e["decoder_input_ids"] };
        GoldenData.AssertClose(Logits(model, args), Logits(reloaded, args), 0, "reloaded logits");
    }

    [Fact]
    public void InitWeightsFollowsTheT5Scheme()
    {
        using var scope = torch.NewDisposeScope();
        using var model = AutoModel.FromConfig(ModelConfig.FromFolder(GoldenData.Dir("t5_base")));
        model.InitWeights(7);
        var p = model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        void Std(string name, double expected) => Assert.InRange(p[name].std().item<float>(), 0.9 * expected, 1.1 * expected);
        Std("shared.weight", 1.0);
        Std("encoder.block.0.layer.0.SelfAttention.q.weight", Math.Pow(64 * 16, -0.5));
        Std("decoder.block.1.layer.1.EncDecAttention.k.weight", Math.Pow(64, -0.5));
        Std("encoder.block.1.layer.1.DenseReluDense.wo.weight", Math.Pow(128, -0.5));
        Assert.True(p["decoder.final_layer_norm.weight"].eq(1).all().item<bool>());
        // Tied: lm_head shares shared.weight, so (as in PyTorch) it is not listed again.
        Assert.DoesNotContain("lm_head.weight", p.Keys);
    }

    [Theory]
    [InlineData("\"feed_forward_proj\": \"gated-gelu-x\"", "feed_forward_proj")]
    [InlineData("\"feed_forward_proj\": \"swiglu\"", "dense_act_fn")]
    [InlineData("\"relative_attention_num_buckets\": 2", "relative_attention_num_buckets")]
    [InlineData("\"d_ff\": 0", "d_ff")]
    public void BadConfigsAreRejected(string extra, string key)
    {
        var json = "{\"model_type\": \"t5\", \"vocab_size\": 32, \"d_model\": 16, \"d_kv\": 4, \"num_layers\": 1, \"num_heads\": 4, " + extra + "}";
        var ex = Assert.Throws<ModelConfigException>(() => AutoModel.FromConfig(ModelConfig.Parse(json)));
        Assert.Contains(key, ex.Message);
    }

    [Fact]
    public void Bfloat16ForwardStaysCloseToFloat32()
    {
        using var scope = torch.NewDisposeScope();
        using var model = AutoModel.FromPretrained(GoldenData.Dir("t5_base"), new ModelLoadOptions { DType = ScalarType.BFloat16 });
        model.eval();
        var e = GoldenData.Expected("t5_base");
        var logits = Logits(model, new ForwardArgs { InputIds = e["input_ids"], AttentionMask = e["attention_mask"], DecoderInputIds = e["decoder_input_ids"] });
        Assert.Equal(ScalarType.Float32, logits.dtype);
        Assert.True(GoldenData.MaxAbsDiff(e["logits"], logits) < 0.15, "bf16 logits drifted");
    }

    [Fact]
    public void ShiftRightBuildsDecoderInputsFromLabels()
    {
        using var scope = torch.NewDisposeScope();
        using var model = (Peft.Training.Models.T5.T5ForConditionalGeneration)Load();
        var labels = torch.tensor(new long[,] { { 5, 6, 7, 1 }, { 8, 1, -100, -100 } });
        var shifted = model.ShiftRight(labels);
        Assert.Equal(new long[] { 0, 5, 6, 7, 0, 8, 1, 0 }, shifted.data<long>().ToArray());
    }
}
