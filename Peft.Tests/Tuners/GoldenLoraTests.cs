using Peft.Tests.Support;

namespace Peft.Tests.Tuners;

/// <summary>LoRA / rsLoRA / DoRA adapters written by PEFT 0.10: load unchanged, same logits (1e-4), same merged logits.</summary>
public class GoldenLoraTests
{
    public static TheoryData<string, string> Cases => new()
    {
        { "llama_lora", "llama_base" },
        { "llama_lora_rslora", "llama_base" },
        { "llama_lora_dora", "llama_base" },
        { "qwen2_lora", "qwen2_base" },
        { "gpt2_lora", "gpt2_base" },
        { "gpt2_lora_rslora", "gpt2_base" },
        { "opt_lora", "opt_base" },
        { "bloom_lora", "bloom_base" },
        { "t5_lora", "t5_base" },
        { "t5_lora_rslora", "t5_base" },
        { "t5_lora_dora", "t5_base" },
        { "mt5_lora", "mt5_base" },
        { "bert_lora", "bert_base" },
        { "bert_lora_rslora", "bert_base" },
        { "bert_lora_dora", "bert_base" },
        { "roberta_lora", "roberta_base" },
    };

    [Theory, MemberData(nameof(Cases))]
    public void AdapterLogitsMatchPeft(string caseName, string baseName) => GoldenAdapterChecks.LogitsMatch(caseName, baseName);

    [Theory, MemberData(nameof(Cases))]
    public void TrainableParameterCountsMatchPeft(string caseName, string baseName) => GoldenAdapterChecks.CountsMatch(caseName, baseName);

    [Theory, MemberData(nameof(Cases))]
    public void ResavedAdapterEqualsGoldenFiles(string caseName, string baseName) => GoldenAdapterChecks.ResaveMatches(caseName, baseName);
}
