using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using Peft.Tests.Support;

namespace Peft.Tests.Hub;

/// <summary>Builders for uploads, valid and broken: safetensors files, adapter configs, zips.</summary>
internal static class UploadCraft
{
    public static byte[] LlamaLoraConfig => File.ReadAllBytes(Path.Combine(GoldenData.Dir("llama_lora"), "adapter_config.json"));
    public static byte[] LlamaLoraWeights => File.ReadAllBytes(Path.Combine(GoldenData.Dir("llama_lora"), "adapter_model.safetensors"));

    /// <summary>The llama_lora config with <paramref name="edit"/> applied.</summary>
    public static byte[] Config(Action<JsonObject> edit)
    {
        var o = JsonNode.Parse(LlamaLoraConfig)!.AsObject();
        edit(o);
        return Encoding.UTF8.GetBytes(o.ToJsonString());
    }

    /// <summary>A well-formed F32 safetensors file with zero data for the given tensors.</summary>
    public static byte[] Safetensors(params (string Name, long[] Shape)[] tensors)
    {
        var header = new JsonObject();
        long offset = 0;
        foreach (var (name, shape) in tensors)
        {
            long bytes = 4 * shape.Aggregate(1L, (a, b) => a * b);
            header[name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(shape.Select(d => (JsonNode?)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        return Raw(header.ToJsonString(), offset);
    }

    /// <summary>Length prefix + <paramref name="headerJson"/> (space-padded to 8) + <paramref name="dataBytes"/> zeros.</summary>
    public static byte[] Raw(string headerJson, long dataBytes) => RawBytes(Encoding.UTF8.GetBytes(headerJson), dataBytes);

    public static byte[] RawBytes(byte[] header, long dataBytes)
    {
        var pad = (8 - header.Length % 8) % 8;
        var ms = new MemoryStream();
        ms.Write(BitConverter.GetBytes((ulong)(header.Length + pad)));
        ms.Write(header);
        ms.Write(Enumerable.Repeat((byte)' ', pad).ToArray());
        ms.Write(new byte[dataBytes]);
        return ms.ToArray();
    }

    /// <summary>The llama_lora tensors (q_proj and v_proj of layers 0 and 1, r = 4) with one changed.</summary>
    public static (string, long[])[] LlamaLoraTensors(string? replace = null, long[]? shape = null, (string, long[])? add = null)
    {
        var list = new List<(string, long[])>();
        foreach (var layer in new[] { 0, 1 })
        {
            list.Add(($"base_model.model.model.layers.{layer}.self_attn.q_proj.lora_A.weight", [4, 64]));
            list.Add(($"base_model.model.model.layers.{layer}.self_attn.q_proj.lora_B.weight", [64, 4]));
            list.Add(($"base_model.model.model.layers.{layer}.self_attn.v_proj.lora_A.weight", [4, 64]));
            list.Add(($"base_model.model.model.layers.{layer}.self_attn.v_proj.lora_B.weight", [32, 4]));
        }
        if (replace is not null) list[list.FindIndex(t => t.Item1 == replace)] = (replace, shape!);
        if (add is { } a) list.Add(a);
        return list.ToArray();
    }

    public static byte[] Zip(params (string Name, byte[] Content)[] entries)
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var (name, content) in entries)
            {
                using var s = zip.CreateEntry(name, CompressionLevel.Optimal).Open();
                s.Write(content);
            }
        return ms.ToArray();
    }

    public static MultipartFormDataContent Files(byte[] config, byte[] weights, string? baseModel = null)
    {
        var form = new MultipartFormDataContent
        {
            { HubFactory.Bytes(config), "adapter_config", "adapter_config.json" },
            { HubFactory.Bytes(weights), "adapter_model", "adapter_model.safetensors" },
        };
        if (baseModel is not null) form.Add(new StringContent(baseModel), "base_model");
        return form;
    }

    public static MultipartFormDataContent ZipForm(byte[] zip) => new() { { HubFactory.Bytes(zip), "file", "adapter.zip" } };

    public static MultipartFormDataContent Weights(byte[] weights) => Files(LlamaLoraConfig, weights);

    public static MultipartFormDataContent ConfigOnly(byte[] config) => Files(config, Safetensors(LlamaLoraTensors()));
}
