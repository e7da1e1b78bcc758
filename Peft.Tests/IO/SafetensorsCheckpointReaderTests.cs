using Peft.Tests.Support;
using System.Text.Json;
using Peft.Training.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.IO;

public class SafetensorsCheckpointReaderTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Two shards plus an index, like save_pretrained(max_shard_size=...) writes.</summary>
    private Dictionary<string, Tensor> WriteShardedFolder(Dictionary<string, string>? weightMapOverride = null)
    {
        var tensors = new Dictionary<string, Tensor>
        {
            ["model.embed.weight"] = torch.randn(8, 4),
            ["model.layers.0.weight"] = torch.randn(4, 4).to_type(ScalarType.BFloat16),
            ["model.layers.1.weight"] = torch.randn(4, 4),
            ["lm_head.weight"] = torch.randn(8, 4),
            ["model.position_ids"] = torch.arange(8, ScalarType.Int64),
        };
        string[] first = ["model.embed.weight", "model.layers.0.weight"];
        const string shard1 = "model-00001-of-00002.safetensors", shard2 = "model-00002-of-00002.safetensors";
        Safetensors.Save(_dir.File(shard1), tensors.Where(p => first.Contains(p.Key)));
        Safetensors.Save(_dir.File(shard2), tensors.Where(p => !first.Contains(p.Key)));
        var weightMap = weightMapOverride
            ?? tensors.Keys.ToDictionary(k => k, k => first.Contains(k) ? shard1 : shard2);
        var index = new { metadata = new { total_size = 1234 }, weight_map = weightMap };
        File.WriteAllText(_dir.File(CheckpointReader.IndexFileName), JsonSerializer.Serialize(index));
        return tensors;
    }

    [Fact]
    public void ShardedFolder_LoadsEveryKeyFromItsShard()
    {
        using var scope = torch.NewDisposeScope();
        var tensors = WriteShardedFolder();
        using var reader = CheckpointReader.OpenFolder(_dir.Path);

        Assert.Equal(tensors.Keys, reader.Keys); // weight_map order
        Assert.Equal(2, reader.Files.Count);
        Assert.Equal("1234", reader.Metadata["total_size"]);
        Assert.EndsWith(CheckpointReader.IndexFileName, reader.Source);
        Assert.True(reader.Contains("lm_head.weight"));
        Assert.False(reader.Contains("missing"));
        Assert.Equal("BF16", reader.Entry("model.layers.0.weight").DType);
        Assert.Equal([8L, 4], reader.Entry("lm_head.weight").Shape);
        foreach (var (key, expected) in tensors)
        {
            SafetensorsTests.AssertSame(expected, reader.Load(key));
            SafetensorsTests.AssertSame(expected, reader.LoadMapped(key));
        }
        Assert.Equal(ScalarType.Float32, reader.Load("model.layers.0.weight", dtype: ScalarType.Float32).dtype);

        var ex = Assert.Throws<KeyNotFoundException>(() => reader.Load("missing"));
        Assert.Contains("missing", ex.Message);
        Assert.Contains(_dir.Path, ex.Message);
    }

    [Fact]
    public void SingleFileFolder_IsPreferred()
    {
        using var scope = torch.NewDisposeScope();
        WriteShardedFolder();
        Safetensors.Save(_dir.File(CheckpointReader.SingleFileName), [new("only", torch.ones(2))]);
        using var reader = CheckpointReader.OpenFolder(_dir.Path);
        Assert.Equal(["only"], reader.Keys);
        Assert.Equal("pt", reader.Metadata["format"]);
    }

    [Fact]
    public void GoldenLlamaBaseFolder()
    {
        using var reader = CheckpointReader.OpenFolder(Path.Combine(AppContext.BaseDirectory, "Golden", "llama_base"));
        Assert.Contains("model.embed_tokens.weight", reader.Keys);
        Assert.Equal([128L, 64], reader.Entry("model.embed_tokens.weight").Shape);
        using var t = reader.Load("model.layers.1.self_attn.k_proj.weight");
        Assert.Equal([32L, 64], t.shape); // 2 kv heads * head_dim 16
    }

    [Fact]
    public void OpenFile_ReadsOneFile()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Golden", "llama_lora", "adapter_model.safetensors");
        using var reader = CheckpointReader.OpenFile(path);
        Assert.Equal(path, reader.Source);
        Assert.All(reader.Keys, k => Assert.Contains("lora_", k));
    }

    [Fact]
    public void EmptyFolder_NamesTheFolder()
    {
        var ex = Assert.Throws<PeftUserException>(() => CheckpointReader.OpenFolder(_dir.Path));
        Assert.Contains(_dir.Path, ex.Message);
        Assert.Contains(CheckpointReader.IndexFileName, ex.Message);
        Assert.Throws<PeftUserException>(() => CheckpointReader.OpenFolder(_dir.File("nope")));
    }

    [Fact]
    public void MissingShard_NamesTheShard()
    {
        using var scope = torch.NewDisposeScope();
        WriteShardedFolder(new() { ["model.embed.weight"] = "model-00009-of-00009.safetensors" });
        var ex = Assert.Throws<PeftUserException>(() => CheckpointReader.OpenFolder(_dir.Path));
        Assert.Contains("model-00009-of-00009.safetensors", ex.Message);
    }

    [Fact]
    public void KeyInWrongShard_IsAFormatError()
    {
        using var scope = torch.NewDisposeScope();
        WriteShardedFolder(new() { ["lm_head.weight"] = "model-00001-of-00002.safetensors" });
        var ex = Assert.Throws<SafetensorsFormatException>(() => CheckpointReader.OpenFolder(_dir.Path));
        Assert.Contains(CheckpointReader.IndexFileName, ex.Message);
        Assert.Contains("'lm_head.weight'", ex.Message);
    }

    [Theory]
    [InlineData("{\"weight_map\":", "not valid JSON")]
    [InlineData("{\"metadata\":{}}", "no 'weight_map'")]
    [InlineData("{\"weight_map\":{\"a\":3}}", "'a' is not a shard file name")]
    [InlineData("{\"weight_map\":{\"a\":\"../outside.safetensors\"}}", "outside the model folder")]
    public void BadIndex_IsAFormatErrorNamingTheIndex(string json, string reason)
    {
        File.WriteAllText(_dir.File(CheckpointReader.IndexFileName), json);
        var ex = Assert.Throws<SafetensorsFormatException>(() => CheckpointReader.OpenFolder(_dir.Path));
        Assert.Contains(_dir.File(CheckpointReader.IndexFileName), ex.Message);
        Assert.Contains(reason, ex.Message);
    }
}
