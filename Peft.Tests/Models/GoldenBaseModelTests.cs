using Peft.Tests.Support;
using Peft.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Models;

/// <summary>Base-model forward passes against transformers 4.40 (float32 logits and every hidden state, tol 1e-4).</summary>
public class GoldenBaseModelTests
{
    [Theory]
    [InlineData("llama_base")]
    [InlineData("qwen2_base")]
    [InlineData("gpt2_base")]
    [InlineData("opt_base")]
    [InlineData("bloom_base")]
    [InlineData("bert_base")]
    [InlineData("roberta_base")]
    public void LogitsAndHiddenStatesMatchTransformers(string caseName)
    {
        using var scope = torch.NewDisposeScope();
        using var model = AutoModel.FromPretrained(GoldenData.Dir(caseName));
        model.eval();
        var expected = GoldenData.Expected(caseName);
        using var noGrad = torch.no_grad();
        using var output = model.Forward(new ForwardArgs
        {
            InputIds = expected["input_ids"],
            AttentionMask = expected["attention_mask"],
            OutputHiddenStates = true,
        });
        GoldenData.AssertClose(expected["logits"], output.Logits, 1e-4, "logits");
        int n = expected.Keys.Count(k => k.StartsWith("hidden_states.", StringComparison.Ordinal));
        Assert.Equal(n, output.HiddenStates!.Count);
        for (int i = 0; i < n; i++)
            GoldenData.AssertClose(expected[$"hidden_states.{i}"], output.HiddenStates[i], 1e-4, $"hidden_states.{i}");
        if (model.Task != TaskType.CausalLM) return;
        // logits_to_keep = 1 (what a prefill asks for): the last position only, the same numbers.
        using var last = model.Forward(new ForwardArgs { InputIds = expected["input_ids"], AttentionMask = expected["attention_mask"], LogitsToKeep = 1 });
        long t = expected["logits"].shape[1];
        Assert.Equal(1, last.Logits.shape[1]);
        GoldenData.AssertClose(expected["logits"].narrow(1, t - 1, 1), last.Logits, 1e-4, "logits_to_keep=1");
    }
}
