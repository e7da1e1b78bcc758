using Peft.Tests.Support;
using Peft.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Models;

/// <summary>
/// T5 / mT5 forward passes against transformers 4.40: logits and every encoder/decoder hidden state, 1e-4 absolute,
/// except mT5 logits (untied lm_head with std-1 init, |logits| up to ~26): 1e-4 relative to the largest expected |logit|.
/// Measured: t5 ≤ 1.5e-6 everywhere; mt5 hidden states ≤ 1.8e-6, logits 1.4e-5.
/// </summary>
public class T5GoldenModelTests
{
    /// <summary>1e-4, scaled by max |expected| for mT5 logits (see the class summary).</summary>
    [Theory]
    [InlineData("t5_base")]
    [InlineData("mt5_base")]
    public void LogitsAndHiddenStatesMatchTransformers(string caseName)
    {
        using var scope = torch.NewDisposeScope();
        using var model = AutoModel.FromPretrained(GoldenData.Dir(caseName));
        model.eval();
        Assert.True(model.IsEncoderDecoder);
        Assert.Equal(TaskType.Seq2SeqLM, model.Task);
        var expected = GoldenData.Expected(caseName);
        using var noGrad = torch.no_grad();
        using var output = model.Forward(new ForwardArgs
        {
            InputIds = expected["input_ids"],
            AttentionMask = expected["attention_mask"],
            DecoderInputIds = expected["decoder_input_ids"],
            OutputHiddenStates = true,
        });
        var logits = expected["logits"];
        GoldenData.AssertClose(logits, output.Logits, GoldenAdapterChecks.Tolerance(caseName, logits), "logits");
        Check(expected, "encoder_hidden_states", output.EncoderHiddenStates!);
        Check(expected, "decoder_hidden_states", output.HiddenStates!);
        // The encoder output is the last encoder hidden state (after the final norm).
        GoldenData.AssertClose(output.EncoderHiddenStates![^1], output.EncoderLastHiddenState!, 0, "encoder last hidden state");
    }

    private static void Check(Dictionary<string, Tensor> expected, string prefix, IReadOnlyList<Tensor> actual)
    {
        int n = expected.Keys.Count(k => k.StartsWith(prefix + ".", StringComparison.Ordinal));
        Assert.Equal(3, n);   // 2 blocks: the input of each, then the final-norm output
        Assert.Equal(n, actual.Count);
        for (int i = 0; i < n; i++)
            GoldenData.AssertClose(expected[$"{prefix}.{i}"], actual[i], 1e-4, $"{prefix}.{i}");
    }
}
