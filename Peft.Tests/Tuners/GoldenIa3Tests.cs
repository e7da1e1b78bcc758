using Peft.Tests.Support;

namespace Peft.Tests.Tuners;

/// <summary>IA³ adapters written by PEFT 0.10 (feed-forward vectors on inputs, others on outputs; GPT-2 Conv1D).</summary>
public class GoldenIa3Tests
{
    public static TheoryData<string, string> Cases => new()
    {
        { "llama_ia3", "llama_base" },
        { "gpt2_ia3", "gpt2_base" },
        { "opt_ia3", "opt_base" },
        { "bloom_ia3", "bloom_base" },
        { "t5_ia3", "t5_base" },
        { "mt5_ia3", "mt5_base" },
        { "bert_ia3", "bert_base" },
    };

    [Theory, MemberData(nameof(Cases))]
    public void AdapterLogitsMatchPeft(string caseName, string baseName) => GoldenAdapterChecks.LogitsMatch(caseName, baseName);

    [Theory, MemberData(nameof(Cases))]
    public void TrainableParameterCountsMatchPeft(string caseName, string baseName) => GoldenAdapterChecks.CountsMatch(caseName, baseName);

    [Theory, MemberData(nameof(Cases))]
    public void ResavedAdapterEqualsGoldenFiles(string caseName, string baseName) => GoldenAdapterChecks.ResaveMatches(caseName, baseName);
}
