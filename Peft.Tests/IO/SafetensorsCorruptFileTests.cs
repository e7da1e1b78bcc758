using Peft.Tests.Support;
using System.Text;
using Peft.Training.IO;
using TorchSharp;

namespace Peft.Tests.IO;

/// <summary>Every malformed file fails in Open with the file path and the specific reason in the message.</summary>
public class SafetensorsCorruptFileTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] Build(string headerJson, int dataLength, ulong? declaredLength = null)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        return [.. BitConverter.GetBytes(declaredLength ?? (ulong)header.Length), .. header, .. new byte[dataLength]];
    }

    private SafetensorsFormatException AssertCorrupt(byte[] content, params string[] reasons)
    {
        var path = _dir.File("corrupt.safetensors");
        File.WriteAllBytes(path, content);
        var ex = Assert.Throws<SafetensorsFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, ex.Message);
        Assert.Equal(path, ex.FilePath);
        foreach (var reason in reasons)
            Assert.Contains(reason, ex.Message);
        // The same check guards the whole-file loader and the checkpoint reader.
        Assert.Throws<SafetensorsFormatException>(() => Safetensors.Load(path));
        Assert.Throws<SafetensorsFormatException>(() => CheckpointReader.OpenFile(path));
        return ex;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(7)]
    public void FileShorterThan8Bytes(int length) =>
        AssertCorrupt(new byte[length], "shorter than the 8-byte");

    [Fact]
    public void HeaderLengthLargerThanFile() =>
        AssertCorrupt(Build("{}", 0, declaredLength: 1000), "header length 1000", "truncated");

    [Theory]
    [InlineData(100_000_001UL)]
    [InlineData(ulong.MaxValue)]
    public void HeaderLengthAbsurd(ulong declared) =>
        AssertCorrupt(Build("{}", 0, declaredLength: declared), "absurd");

    [Fact]
    public void HeaderNotUtf8() =>
        AssertCorrupt([.. BitConverter.GetBytes(3UL), (byte)'{', 0xFF, (byte)'}'], "not valid UTF-8");

    [Theory]
    // Malformed JSON / wrong top-level type.
    [InlineData("{\"w\":", 0, "not valid JSON")]
    [InlineData("{} trailing", 0, "not valid JSON")]
    [InlineData("[1,2,3]", 0, "not a JSON object")]
    [InlineData("\"text\"", 0, "not a JSON object")]
    // Bad tensor descriptions.
    [InlineData("{\"w\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'w' has unknown dtype 'Q7'")]
    [InlineData("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'w' has no string 'dtype'")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "'w' has no 'shape'")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "'w' has no 'data_offsets'")]
    [InlineData("{\"w\":[1]}", 4, "tensor 'w' must be an object")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative integers")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "non-negative integers")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "[begin, end]")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "end before they begin")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,4]}}", 4, "overflows")]
    // Shape versus offsets.
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "shape/offsets inconsistent", "'w'")]
    [InlineData("{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16, "shape/offsets inconsistent")]
    // Layout of the data section.
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "beyond the data section", "truncated")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlapping tensor ranges", "'b'", "'a'")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "not contiguous", "'b'")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "trailing bytes")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "not contiguous")]
    [InlineData("{}", 4, "trailing bytes")]
    // Metadata and duplicate keys.
    [InlineData("{\"__metadata__\":{\"n\":1}}", 0, "__metadata__ value for 'n' must be a string")]
    [InlineData("{\"__metadata__\":[\"pt\"]}", 0, "__metadata__ must be an object")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "duplicate key 'a'")]
    public void MalformedHeader(string json, int dataLength, params string[] reasons) =>
        AssertCorrupt(Build(json, dataLength), reasons);

    [Fact]
    public void TruncatedRealFile()
    {
        using var scope = torch.NewDisposeScope();
        var path = _dir.File("full.safetensors");
        Safetensors.Save(path, [new("a", torch.ones(16)), new("b", torch.zeros(16))]);
        var bytes = File.ReadAllBytes(path);
        var ex = AssertCorrupt(bytes[..^10], "beyond the data section", "truncated");
        Assert.Contains("'b'", ex.Message);
    }

    [Fact]
    public void ValidEdgeCases_AreAccepted()
    {
        // Zero-length tensors may share an offset with each other and with the next tensor; null metadata is "none".
        var json = "{\"__metadata__\":null," +
                   "\"z1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}," +
                   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}," +
                   "\"z2\":{\"dtype\":\"I64\",\"shape\":[3,0],\"data_offsets\":[4,4]}," +
                   "\"u\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[4,8]}}";
        var path = _dir.File("edge.safetensors");
        File.WriteAllBytes(path, Build(json, 8));
        using var file = SafetensorsFile.Open(path);
        Assert.Empty(file.Metadata);
        Assert.Equal(["z1", "a", "z2", "u"], file.Entries.Select(e => e.Name));
        using var z2 = file.Load("z2");
        Assert.Equal([3L, 0], z2.shape);
        // A dtype the format knows but TorchSharp cannot hold fails on load, not on open.
        var ex = Assert.Throws<PeftUserException>(() => file.Load("u"));
        Assert.Contains("U16", ex.Message);
    }
}
