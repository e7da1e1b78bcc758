using System.Text.Json.Nodes;
using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Models;

public class ModelFeatureTests
{
    private const string TinyLlama = "{\"model_type\":\"llama\",\"vocab_size\":64,\"hidden_size\":32,\"intermediate_size\":48,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2}";

    private static PretrainedModel Build(string json, long seed = 0)
    {
        var m = AutoModel.FromConfig(ModelConfig.Parse(json));
        m.InitWeights(seed);
        m.eval();
        return m;
    }

    private static string With(string json, string extra) => json.TrimEnd('}') + "," + extra + "}";

    private static Tensor Logits(PretrainedModel m, Tensor ids, Tensor? positions = null, Tensor? mask = null, KvCache? cache = null)
    {
        using var noGrad = torch.no_grad();
        using var o = m.Forward(new ForwardArgs { InputIds = ids, PositionIds = positions, AttentionMask = mask, Cache = cache });
        return o.Logits.clone();
    }

    [Fact]
    public void InjectedPrefixKeyValuesReproducePeftPrefixTuning()
    {
        // Golden llama_prefix_tuning: prompt_embeddings [5, 2·L·D]; layer i key = block 2i, value = block 2i+1,
        // each viewed [T, kv_heads, head_dim] → [kv_heads, T, head_dim]; mask gets 5 ones in front, positions start at 5.
        using var scope = torch.NewDisposeScope();
        using var model = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
        model.eval();
        var e = GoldenData.Expected("llama_prefix_tuning");
        var p = Safetensors.Load(Path.Combine(GoldenData.Dir("llama_prefix_tuning"), "adapter_model.safetensors"))["prompt_embeddings"];
        long t = p.shape[0], b = e["input_ids"].shape[0];
        var blocks = p.view(t, 2 * model.NumLayers, model.NumKeyValueHeads, model.HeadDim);
        using var cache = new KvCache(model.NumLayers);
        for (int i = 0; i < model.NumLayers; i++)
        {
            var k = blocks.select(1, 2 * i).permute(1, 0, 2).unsqueeze(0).expand(b, -1, -1, -1);
            var v = blocks.select(1, 2 * i + 1).permute(1, 0, 2).unsqueeze(0).expand(b, -1, -1, -1);
            cache.Set(i, k, v);
        }
        var mask = torch.cat([torch.ones(b, t, ScalarType.Int64), e["attention_mask"]], 1);
        GoldenData.AssertClose(e["logits"], Logits(model, e["input_ids"], mask: mask, cache: cache), 1e-4, "prefix logits");
    }

    [Fact]
    public void KvCacheStepsEqualOneFullForward()
    {
        using var scope = torch.NewDisposeScope();
        using var model = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
        model.eval();
        var ids = GoldenData.Expected("llama_base")["input_ids"];
        var full = Logits(model, ids);
        using var cache = new KvCache(model.NumLayers);
        var first = Logits(model, ids.narrow(1, 0, 4), cache: cache);
        var rest = Enumerable.Range(4, 3).Select(i => Logits(model, ids.narrow(1, i, 1), cache: cache)).ToList();
        GoldenData.AssertClose(full.narrow(1, 0, 4), first, 1e-5, "prefill");
        for (int i = 0; i < 3; i++) GoldenData.AssertClose(full.narrow(1, 4 + i, 1), rest[i], 1e-5, $"step {i}");
    }

    [Fact]
    public void LinearRopeScalingDividesPositions()
    {
        using var scope = torch.NewDisposeScope();
        using var plain = Build(TinyLlama, 1);
        using var scaled = Build(With(TinyLlama, "\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0}"), 1);
        var ids = torch.tensor(new long[] { 3, 9, 4, 17 }).unsqueeze(0);
        var even = torch.tensor(new long[] { 0, 2, 4, 6 }).unsqueeze(0);
        GoldenData.AssertClose(Logits(plain, ids), Logits(scaled, ids, even), 1e-5, "scaled(2p) == plain(p)");
    }

    [Fact]
    public void Llama3RopeScalingBandsBehaveAtTheirLimits()
    {
        using var scope = torch.NewDisposeScope();
        var ids = torch.tensor(new long[] { 3, 9, 4, 17, 30 }).unsqueeze(0);
        using var plain = Build(TinyLlama, 2);
        using var linear = Build(With(TinyLlama, "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":8.0}"), 2);
        // Every wavelength above original/low_freq_factor → all frequencies divided by factor (= linear).
        using var allLow = Build(With(TinyLlama, "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":1}"), 2);
        // Every wavelength below original/high_freq_factor → unchanged.
        using var allHigh = Build(With(TinyLlama, "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":100000000}"), 2);
        GoldenData.AssertClose(Logits(linear, ids), Logits(allLow, ids), 1e-5, "llama3 low band");
        GoldenData.AssertClose(Logits(plain, ids), Logits(allHigh, ids), 1e-5, "llama3 high band");
    }

    [Fact]
    public void TiedEmbeddingsShareOneTensorAndAreSavedOnce()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        using var model = Build(With(TinyLlama, "\"tie_word_embeddings\":true"), 3);
        var head = (LinearLayer)model.named_modules().First(m => m.name == "lm_head").module;
        Assert.Equal(model.InputEmbeddings.weight.Handle, head.weight.Handle);
        long unique = model.UniqueNamedParameters().Sum(p => p.Param.numel());
        using var untied = Build(TinyLlama, 3);
        Assert.Equal(untied.UniqueNamedParameters().Sum(p => p.Param.numel()) - 64 * 32, unique);
        model.SavePretrained(tmp.Path);
        using (var f = SafetensorsFile.Open(tmp.Sub("model.safetensors")))
            Assert.DoesNotContain(f.Entries, x => x.Name == "lm_head.weight");
        using var reloaded = AutoModel.FromPretrained(tmp.Path);
        reloaded.eval();
        var ids = torch.tensor(new long[] { 1, 2, 3 }).unsqueeze(0);
        GoldenData.AssertClose(Logits(model, ids), Logits(reloaded, ids), 0, "reload");
    }

    [Fact]
    public void SlidingWindowMasksOldKeys()
    {
        using var scope = torch.NewDisposeScope();
        var mask = AttentionOps.CausalMask(null, 1, 4, 0, ScalarType.Float32, torch.CPU, slidingWindow: 2);
        var keep = (mask == 0).to(ScalarType.Int64).view(4, 4);
        Assert.Equal(new long[] { 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1 }, keep.data<long>().ToArray());
        using var mistral = Build(TinyLlama.Replace("\"llama\"", "\"mistral\"").TrimEnd('}') + ",\"sliding_window\":2}", 4);
        using var llama = Build(TinyLlama, 4);
        var ids = torch.tensor(new long[] { 5, 6, 7, 8 }).unsqueeze(0);
        var m = Logits(mistral, ids);
        var l = Logits(llama, ids);
        GoldenData.AssertClose(l.narrow(1, 0, 2), m.narrow(1, 0, 2), 1e-5, "inside the window");
        Assert.True(GoldenData.MaxAbsDiff(l.narrow(1, 2, 2), m.narrow(1, 2, 2)) > 1e-4, "window must cut old keys");
    }

    [Fact]
    public void ShardedCheckpointLoadsThroughTheIndex()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        var all = Safetensors.Load(Path.Combine(GoldenData.Dir("llama_base"), "model.safetensors"));
        var keys = all.Keys.Order().ToList();
        var first = keys.Take(keys.Count / 2).ToList();
        Safetensors.Save(tmp.Sub("model-00001-of-00002.safetensors"), first.Select(k => new KeyValuePair<string, Tensor>(k, all[k])));
        Safetensors.Save(tmp.Sub("model-00002-of-00002.safetensors"), keys.Skip(first.Count).Select(k => new KeyValuePair<string, Tensor>(k, all[k])));
        var map = new JsonObject();
        foreach (var k in keys) map[k] = first.Contains(k) ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
        File.WriteAllText(tmp.Sub("model.safetensors.index.json"), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
        File.Copy(Path.Combine(GoldenData.Dir("llama_base"), "config.json"), tmp.Sub("config.json"));
        using var model = AutoModel.FromPretrained(tmp.Path);
        model.eval();
        var e = GoldenData.Expected("llama_base");
        GoldenData.AssertClose(e["logits"], Logits(model, e["input_ids"], mask: e["attention_mask"]), 1e-4, "sharded");
    }

    [Fact]
    public void BadModelFoldersGiveMessagesNamingTheProblem()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.Sub("config.json"), File.ReadAllText(Path.Combine(GoldenData.Dir("llama_base"), "config.json")).Replace("\"hidden_size\": 64", "\"hidden_size\": 96"));
        File.Copy(Path.Combine(GoldenData.Dir("llama_base"), "model.safetensors"), tmp.Sub("model.safetensors"));
        var shape = Assert.Throws<ModelLoadException>(() => AutoModel.FromPretrained(tmp.Path));
        Assert.Contains("has shape [", shape.Message);
        Assert.Contains("but the model expects", shape.Message);

        File.WriteAllText(tmp.Sub("config.json"), "{\"model_type\":\"transformer-xl\"}");
        var type = Assert.Throws<ModelConfigException>(() => AutoModel.FromPretrained(tmp.Path));
        Assert.Contains("'model_type' 'transformer-xl' is not supported", type.Message);

        File.WriteAllText(tmp.Sub("config.json"), "{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":30,\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":4}");
        var heads = Assert.Throws<ModelConfigException>(() => AutoModel.FromPretrained(tmp.Path));
        Assert.Contains("'hidden_size' must be divisible by num_attention_heads", heads.Message);

        File.WriteAllText(tmp.Sub("config.json"), File.ReadAllText(Path.Combine(GoldenData.Dir("llama_base"), "config.json")));
        var bytes = File.ReadAllBytes(Path.Combine(GoldenData.Dir("llama_base"), "model.safetensors"));
        File.WriteAllBytes(tmp.Sub("model.safetensors"), bytes[..(bytes.Length / 2)]);
        var corrupt = Assert.Throws<SafetensorsFormatException>(() => AutoModel.FromPretrained(tmp.Path));
        Assert.Contains(tmp.Sub("model.safetensors"), corrupt.Message);

        File.Delete(tmp.Sub("model.safetensors"));
        Assert.Throws<PeftUserException>(() => AutoModel.FromPretrained(tmp.Path));
        Assert.Throws<PeftUserException>(() => AutoModel.FromPretrained(tmp.Sub("nope")));
    }

    [Fact]
    public void MetaDeviceBuildsAllocateNothing()
    {
        var cfg = ModelConfig.Parse("{\"model_type\":\"llama\",\"vocab_size\":32000,\"hidden_size\":2048,\"intermediate_size\":5632,\"num_hidden_layers\":22,\"num_attention_heads\":32,\"num_key_value_heads\":4}");
        using var model = AutoModel.FromConfig(cfg, new ModelLoadOptions { Device = torch.META });
        Assert.Equal(1_100_048_384, model.UniqueNamedParameters().Sum(p => p.Param.numel()));
        Assert.All(model.parameters(), p => Assert.Equal(DeviceType.META, p.device.type));
    }
}
