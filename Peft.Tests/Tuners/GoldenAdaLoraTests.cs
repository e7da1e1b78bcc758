using Peft.Tests.Support;

namespace Peft.Tests.Tuners;

/// <summary>
/// AdaLoRA adapters written by PEFT 0.10: full init_r ranks, and "_allocated" ones whose rank_pattern cut the saved
/// tensors (loading re-creates the modules at the kept ranks with ranknum = init_r).
/// </summary>
public class GoldenAdaLoraTests
{
    public static TheoryData<string, string> Cases => new()
    {
        { "llama_adalora", "llama_base" },
        { "llama_adalora_allocated", "llama_base" },
        { "gpt2_adalora", "gpt2_base" },
        { "gpt2_adalora_allocated", "gpt2_base" },
        { "t5_adalora", "t5_base" },
        { "t5_adalora_allocated", "t5_base" },
        { "bert_adalora", "bert_base" },
        { "bert_adalora_allocated", "bert_base" },
    };

    [Theory, MemberData(nameof(Cases))]
    public void AdapterLogitsMatchPeft(string caseName, string baseName) => GoldenAdapterChecks.LogitsMatch(caseName, baseName);

    [Theory, MemberData(nameof(Cases))]
    public void TrainableParameterCountsMatchPeft(string caseName, string baseName) => GoldenAdapterChecks.CountsMatch(caseName, baseName);

    [Theory, MemberData(nameof(Cases))]
    public void ResavedAdapterEqualsGoldenFiles(string caseName, string baseName) => GoldenAdapterChecks.ResaveMatches(caseName, baseName);
}
