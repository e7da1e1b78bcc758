using Peft.Training.Models;
using Peft.Training.Tokenization;

namespace Peft.Tests.Training;

/// <summary>Small randomly initialised models on the byte-level tokenizer fixture, and the text fixtures.</summary>
internal static class TinyModels
{
    public static string TokenizerDir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", "byte-level");

    public static string Text(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "text", name);

    public static ITextTokenizer Tokenizer() => AutoTokenizer.FromFolder(TokenizerDir);

    public static ModelConfig LlamaConfig(int layers = 2, int hidden = 64, int intermediate = 128, int vocab = 257) => ModelConfig.Parse($$"""
        {"model_type": "llama", "vocab_size": {{vocab}}, "hidden_size": {{hidden}}, "intermediate_size": {{intermediate}},
         "num_hidden_layers": {{layers}}, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
         "rms_norm_eps": 1e-6, "initializer_range": 0.02, "tie_word_embeddings": false}
        """);

    public static PretrainedModel Llama(long seed = 7, int layers = 2, int hidden = 64)
    {
        var model = AutoModel.FromConfig(LlamaConfig(layers, hidden, hidden * 2));
        model.InitWeights(seed);
        return model;
    }

    /// <summary>A model folder as <c>peft train --model</c> expects: config.json, model.safetensors and the tokenizer.</summary>
    public static void SaveModelFolder(string dir, long seed = 7)
    {
        using var model = Llama(seed);
        model.SavePretrained(dir);
        foreach (var f in Directory.GetFiles(TokenizerDir)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)), true);
    }

    /// <summary>Packed byte-level blocks of the English training text.</summary>
    public static Peft.Training.Data.TrainingDataset TextBlocks(int blockSize = 32, string file = "english-train.txt")
    {
        using var tok = Tokenizer();
        return Peft.Training.Data.DatasetBuilder.Load(Text(file), tok, new Peft.Training.Data.DatasetOptions { MaxLength = blockSize });
    }
}

/// <summary>Tests that train with dropout read the process-wide torch RNG, so they must not run beside other tests.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalRngCollection
{
    public const string Name = "global torch RNG";
}
