using Peft.Tests.Support;
using System.Text;
using System.Text.Json;
using Peft.Training.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.IO;

public class SafetensorsTests
{
    private static string Golden(params string[] parts) =>
        Path.Combine([AppContext.BaseDirectory, "Golden", .. parts]);

    /// <summary>A tensor whose bytes are random, so every bit pattern (NaN payloads, subnormals, -0) is exercised.</summary>
    private static Tensor RandomBits(ScalarType type, long[] shape, int seed)
    {
        var t = torch.empty(shape, type);
        if (type == ScalarType.Bool)
        {
            using var r = torch.rand(shape);
            t.copy_(r.gt(0.5));
            return t;
        }
        var bytes = new byte[t.numel() * t.element_size()];
        new Random(seed).NextBytes(bytes);
        t.bytes = bytes;
        return t;
    }

    private static (ulong N, string Header) ReadHeader(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var n = BitConverter.ToUInt64(bytes, 0);
        return (n, Encoding.UTF8.GetString(bytes, 8, (int)n));
    }

    /// <summary>Same dtype, shape and bytes (bit-exact, so NaNs compare equal to themselves).</summary>
    internal static void AssertSame(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.dtype, actual.dtype);
        Assert.Equal(expected.shape, actual.shape);
        using var e = expected.contiguous();
        using var a = actual.contiguous();
        Assert.Equal(e.bytes.ToArray(), a.bytes.ToArray());
    }

    [Theory]
    [InlineData(ScalarType.Float32, "F32")]
    [InlineData(ScalarType.Float16, "F16")]
    [InlineData(ScalarType.BFloat16, "BF16")]
    [InlineData(ScalarType.Int64, "I64")]
    [InlineData(ScalarType.Int32, "I32")]
    [InlineData(ScalarType.Bool, "BOOL")]
    [InlineData(ScalarType.Byte, "U8")]
    [InlineData(ScalarType.Int8, "I8")]
    [InlineData(ScalarType.Int16, "I16")]
    [InlineData(ScalarType.Float64, "F64")]
    public void RoundTrip_IsBitExact_ForEveryDtype(ScalarType type, string dtype)
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["matrix"] = RandomBits(type, [7, 5], 1),
            ["cube"] = RandomBits(type, [2, 3, 4], 2),
            ["scalar"] = RandomBits(type, [], 3),
            ["empty_rows"] = torch.empty([0, 3], type),
            ["empty_cols"] = torch.empty([4, 0], type),
        };
        var path = dir.File("t.safetensors");
        Safetensors.Save(path, tensors);

        using var file = SafetensorsFile.Open(path);
        Assert.All(file.Entries, e => Assert.Equal(dtype, e.DType));
        Assert.Empty(file["scalar"].Shape);
        Assert.Equal(file["empty_rows"].DataBegin, file["empty_rows"].DataEnd);

        var loaded = Safetensors.Load(path);
        Assert.Equal(tensors.Keys.Order(), loaded.Keys.Order());
        foreach (var (name, expected) in tensors)
        {
            var actual = loaded[name];
            Assert.Equal(type, actual.dtype);
            Assert.Equal(expected.shape, actual.shape);
            Assert.Equal(expected.bytes.ToArray(), actual.bytes.ToArray());
        }
    }

    [Fact]
    public void Save_LaysOutHeaderLikeTheRustCrate()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        // Names chosen so that pure "alignment, then name" order would differ from the crate's dtype-enum order.
        var tensors = new Dictionary<string, Tensor>
        {
            ["a_i32"] = torch.zeros(3, ScalarType.Int32),
            ["b_f32"] = torch.zeros(1, ScalarType.Float32),
            ["c_i64"] = torch.zeros(2, ScalarType.Int64),
            ["b_f64"] = torch.zeros(1, ScalarType.Float64),
            ["e_bf16"] = torch.zeros(3, ScalarType.BFloat16),
            ["d_f16"] = torch.zeros(1, ScalarType.Float16),
            ["g_bool"] = torch.zeros(5, ScalarType.Bool),
            ["h_u8"] = torch.zeros(1, ScalarType.Byte),
            ["i_i8"] = torch.zeros(1, ScalarType.Int8),
            ["j_i16"] = torch.zeros(1, ScalarType.Int16),
            ["B_upper"] = torch.zeros(1, ScalarType.Float32),
        };
        var path = dir.File("layout.safetensors");
        Safetensors.Save(path, tensors);

        var (n, header) = ReadHeader(path);
        Assert.Equal(0UL, (8 + n) % 8);
        Assert.StartsWith("{\"__metadata__\":{\"format\":\"pt\"},", header);
        Assert.DoesNotContain(": ", header);
        var json = header.TrimEnd(' ');
        Assert.Equal(header.Length - json.Length, (int)(n - (ulong)Encoding.UTF8.GetByteCount(json)));

        using var doc = JsonDocument.Parse(json);
        var order = doc.RootElement.EnumerateObject().Select(p => p.Name).Skip(1).ToArray();
        Assert.Equal(["c_i64", "b_f64", "B_upper", "b_f32", "a_i32", "e_bf16", "d_f16", "j_i16", "i_i8", "h_u8", "g_bool"], order);

        // Data is contiguous in header order.
        using var file = SafetensorsFile.Open(path);
        long cursor = 0;
        foreach (var e in file.Entries)
        {
            Assert.Equal(cursor, e.DataBegin);
            cursor = e.DataEnd;
        }
        Assert.Equal(new FileInfo(path).Length, file.DataStart + cursor);
        Assert.Equal("pt", file.Metadata["format"]);
    }

    [Fact]
    public void Save_MatchesRustCrateTestVectors()
    {
        using var dir = new TempDir();
        var path = dir.File("v.safetensors");
        var noMetadata = new Dictionary<string, string>();

        // Empty file: "{}" padded to 8 bytes.
        Safetensors.Save(path, [], noMetadata);
        byte[] empty = [8, 0, 0, 0, 0, 0, 0, 0, .. "{}      "u8];
        Assert.Equal(empty, File.ReadAllBytes(path));

        using var scope = torch.NewDisposeScope();
        var values = torch.arange(6, ScalarType.Float32);
        Safetensors.Save(path, [new("attn.0", values.reshape(1, 2, 3))], noMetadata);
        byte[] expected =
        [
            64, 0, 0, 0, 0, 0, 0, 0,
            .. "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}"u8,
            .. values.bytes.ToArray(),
        ];
        Assert.Equal(expected, File.ReadAllBytes(path));

        // A shorter name forces 7 bytes of space padding.
        Safetensors.Save(path, [new("attn0", values.reshape(1, 1, 2, 3))], noMetadata);
        expected =
        [
            72, 0, 0, 0, 0, 0, 0, 0,
            .. "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       "u8,
            .. values.bytes.ToArray(),
        ];
        Assert.Equal(expected, File.ReadAllBytes(path));
    }

    [Fact]
    public void Metadata_IsEscapedLikeSerdeJson_AndRoundTrips()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["q\"uote"] = "back\\slash\nline\ttab\u0001ctl",
            ["unicode"] = "héllo ✓ </script>",
        };
        var path = dir.File("m.safetensors");
        Safetensors.Save(path, [new("x", torch.ones(2))], metadata);

        var (_, header) = ReadHeader(path);
        Assert.Contains("\"q\\\"uote\":\"back\\\\slash\\nline\\ttab\\u0001ctl\"", header);
        Assert.Contains("\"unicode\":\"héllo ✓ </script>\"", header); // raw UTF-8, no \u escapes

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(metadata.ToArray(), file.Metadata.ToArray()); // same pairs, same order
    }

    [Fact]
    public void GoldenAdapter_ResavesByteIdentical()
    {
        var golden = Golden("llama_lora", "adapter_model.safetensors");
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        using (var file = SafetensorsFile.Open(golden))
        {
            var tensors = Safetensors.Load(golden);
            Assert.Equal(file.Entries.Select(e => e.Name), tensors.Keys);
            Safetensors.Save(dir.File("adapter_model.safetensors"), tensors, file.Metadata);
        }
        Assert.Equal(File.ReadAllBytes(golden), File.ReadAllBytes(dir.File("adapter_model.safetensors")));
    }

    [Fact]
    public void EveryGoldenFile_ResavesByteIdentical()
    {
        using var dir = new TempDir();
        var files = Directory.GetFiles(Golden(), "*.safetensors", SearchOption.AllDirectories);
        Assert.NotEmpty(files);
        var mismatches = new List<string>();
        foreach (var golden in files)
        {
            using var scope = torch.NewDisposeScope();
            using var file = SafetensorsFile.Open(golden);
            var copy = dir.File("copy.safetensors");
            Safetensors.Save(copy, Safetensors.Load(golden), file.Metadata);
            if (!File.ReadAllBytes(golden).AsSpan().SequenceEqual(File.ReadAllBytes(copy)))
                mismatches.Add(golden);
        }
        Assert.Empty(mismatches);
    }

    [Fact]
    public void GoldenLlamaBase_HasExpectedShapes()
    {
        using var file = SafetensorsFile.Open(Golden("llama_base", "model.safetensors"));
        Assert.Equal([128L, 64], file["model.embed_tokens.weight"].Shape);
        Assert.Equal([128L, 64], file["lm_head.weight"].Shape);
        Assert.Equal([64L, 176], file["model.layers.0.mlp.down_proj.weight"].Shape);
        Assert.Equal([176L, 64], file["model.layers.1.mlp.gate_proj.weight"].Shape);
        Assert.Equal([64L], file["model.norm.weight"].Shape);
        Assert.All(file.Entries, e => Assert.Equal("F32", e.DType));
        Assert.Equal("pt", file.Metadata["format"]);

        using var norm = file.Load("model.layers.0.input_layernorm.weight");
        Assert.Equal(ScalarType.Float32, norm.dtype);
        Assert.True(torch.isfinite(norm).all().item<bool>());
    }

    [Fact]
    public void Load_CastsAndKeepsDevice()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var source = torch.randn(3, 4);
        var path = dir.File("c.safetensors");
        Safetensors.Save(path, [new("w", source)]);
        using var file = SafetensorsFile.Open(path);

        var asDouble = file.Load("w", torch.CPU, ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, asDouble.dtype);
        AssertSame(source.to_type(ScalarType.Float64), asDouble);
        Assert.Equal(DeviceType.CPU, file.Load("w", torch.CPU).device_type);
    }

    [Fact]
    public void Save_WritesNonContiguousAndRequiresGradTensors()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var transposed = torch.arange(12, ScalarType.Float32).reshape(3, 4).t();
        var parameter = torch.randn(2, 2).requires_grad_(true);
        var path = dir.File("nc.safetensors");
        Safetensors.Save(path, [new("t", transposed), new("p", parameter)]);

        var loaded = Safetensors.Load(path);
        AssertSame(transposed, loaded["t"]);
        AssertSame(parameter.detach(), loaded["p"]);
        Assert.False(loaded["p"].requires_grad);
    }

    [Fact]
    public void LoadMapped_GivesEqualValues_AndCopyOnWrite()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["f32"] = torch.randn(5, 7),
            ["bf16"] = RandomBits(ScalarType.BFloat16, [3, 3], 5),
            ["i64"] = torch.arange(9, ScalarType.Int64),
            ["flag"] = RandomBits(ScalarType.Bool, [4], 6),
            ["scalar"] = torch.tensor(2.5f),
            ["empty"] = torch.empty([0], ScalarType.Float32),
        };
        var path = dir.File("mapped.safetensors");
        Safetensors.Save(path, tensors);

        Tensor mapped;
        using (var file = SafetensorsFile.Open(path))
        {
            foreach (var (name, expected) in tensors)
            {
                var m = file.LoadMapped(name);
                Assert.Equal(expected.shape, m.shape);
                Assert.Equal(expected.bytes.ToArray(), m.bytes.ToArray());
            }
            mapped = file.LoadMapped("f32");
        }
        // The mapping outlives the SafetensorsFile, and writes stay private to the process.
        AssertSame(tensors["f32"], mapped);
        mapped.add_(1);
        using var reread = SafetensorsFile.Open(path);
        AssertSame(tensors["f32"], reread.Load("f32"));
    }

    [Fact]
    public void LoadMapped_FallsBackToCopy_WhenDataIsMisaligned()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        // Valid (readers do not require alignment), but the F32 data starts 2 bytes off a 4-byte boundary.
        var json = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        while ((8 + json.Length) % 4 != 2) json += " ";
        var header = Encoding.UTF8.GetBytes(json);
        var data = new[] { 1.5f, -2f }.SelectMany(BitConverter.GetBytes).ToArray();
        var path = dir.File("odd.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)header.Length), .. header, .. data]);

        using var file = SafetensorsFile.Open(path);
        var mapped = file.LoadMapped("w");
        Assert.Equal(new[] { 1.5f, -2f }, mapped.data<float>().ToArray());
    }

    [Fact]
    public void Indexer_UnknownName_NamesFileAndKey()
    {
        var golden = Golden("llama_lora", "adapter_model.safetensors");
        using var file = SafetensorsFile.Open(golden);
        Assert.False(file.Contains("nope.weight"));
        var ex = Assert.Throws<KeyNotFoundException>(() => file["nope.weight"]);
        Assert.Contains("nope.weight", ex.Message);
        Assert.Contains("adapter_model.safetensors", ex.Message);
    }

    [Fact]
    public void Save_IsAtomic_UnsupportedDtypeLeavesOldFileAndNoTemp()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var path = dir.File("model.safetensors");
        Safetensors.Save(path, [new("w", torch.ones(3))]);
        var before = File.ReadAllBytes(path);

        var complex = torch.zeros(2, ScalarType.ComplexFloat32);
        var ex = Assert.Throws<NotSupportedException>(() =>
            Safetensors.Save(path, [new("fine", torch.zeros(2)), new("bad", complex)]));
        Assert.Contains("bad", ex.Message);
        Assert.Contains("ComplexFloat32", ex.Message);

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Save_RejectsDuplicateAndReservedNames_BeforeTouchingDisk()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var path = dir.File("x.safetensors");
        Assert.Throws<ArgumentException>(() =>
            Safetensors.Save(path, [new("a", torch.ones(1)), new("a", torch.ones(1))]));
        Assert.Throws<ArgumentException>(() => Safetensors.Save(path, [new("__metadata__", torch.ones(1))]));
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Save_ReplacesFileThatIsOpenAndMapped()
    {
        using var dir = new TempDir();
        using var scope = torch.NewDisposeScope();
        var path = dir.File("live.safetensors");
        Safetensors.Save(path, [new("w", torch.full(4, 1f))]);

        using var old = SafetensorsFile.Open(path);
        var mapped = old.LoadMapped("w");
        Safetensors.Save(path, [new("w", torch.full(4, 2f)), new("v", torch.ones(1))]);

        // Readers of the old file keep seeing the old bytes; new readers see the new file; no temp files remain.
        Assert.Equal(1f, old.Load("w")[0].item<float>());
        Assert.Equal(1f, mapped[3].item<float>());
        using var fresh = SafetensorsFile.Open(path);
        Assert.Equal(2f, fresh.Load("w")[0].item<float>());
        Assert.Equal([path], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Dispose_ThenLoad_Throws()
    {
        var file = SafetensorsFile.Open(Golden("llama_lora", "adapter_model.safetensors"));
        var name = file.Entries[0].Name;
        file.Dispose();
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.Load(name));
    }
}
