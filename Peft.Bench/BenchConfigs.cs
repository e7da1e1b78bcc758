using Peft.Training.Models;

namespace Peft.Bench;

/// <summary>The Llama-architecture configs of the benchmark (random weights), as in docs/BENCHMARKS.md and the peer baseline.</summary>
public static class BenchConfigs
{
    public static readonly IReadOnlyDictionary<string, string> Named = new Dictionary<string, string>
    {
        ["tiny10m"] = Llama(8192, 256, 688, 6, 8, 4),
        ["small50m"] = Llama(16384, 512, 1376, 12, 8, 4),
        ["base120m"] = Llama(32000, 768, 2048, 12, 12, 12),
        // Linear layers hold 95 % of the parameters, as in 7B-class LLMs (small50m/base120m are a third embeddings):
        // the shape on which quantising the linear weights shows its real share of memory.
        ["wide80m"] = Llama(2048, 1024, 2816, 6, 16, 16),
        // 1.1B TinyLlama shape: only ever built on the meta device (load suite).
        ["llama1b"] = Llama(32000, 2048, 5632, 22, 32, 4),
    };

    /// <summary>Default batch × sequence per config (2 × 256 for base120m, as the issue specifies).</summary>
    public static (int Batch, int Seq) DefaultShape(string name) => name == "base120m" ? (2, 256) : (4, 256);

    /// <summary>A named config, or a path to a config.json / model folder.</summary>
    public static ModelConfig Resolve(string nameOrPath)
    {
        if (Named.TryGetValue(nameOrPath, out var json)) return ModelConfig.Parse(json);
        if (Directory.Exists(nameOrPath)) return ModelConfig.FromFolder(nameOrPath);
        if (File.Exists(nameOrPath)) return ModelConfig.Load(nameOrPath);
        throw new PeftUserException($"unknown benchmark config '{nameOrPath}' (use {string.Join(", ", Named.Keys)} or a config.json path)");
    }

    private static string Llama(int vocab, int hidden, int inter, int layers, int heads, int kv) =>
        $"{{\"model_type\":\"llama\",\"vocab_size\":{vocab},\"hidden_size\":{hidden},\"intermediate_size\":{inter}," +
        $"\"num_hidden_layers\":{layers},\"num_attention_heads\":{heads},\"num_key_value_heads\":{kv}," +
        "\"rms_norm_eps\":1e-6,\"rope_theta\":10000.0,\"max_position_embeddings\":2048,\"tie_word_embeddings\":false}";
}
