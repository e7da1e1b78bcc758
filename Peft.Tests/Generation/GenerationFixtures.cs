using Peft.Tests.Support;
using Peft.Training.Generation;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Generation;

/// <summary>Golden tiny models and prompts shared by the generation tests.</summary>
internal sealed class LoadedRunner(ICausalLmRunner runner, IDisposable owner) : IDisposable
{
    public ICausalLmRunner Runner { get; } = runner;
    public void Dispose() => owner.Dispose();
}

internal static class GenerationFixtures
{
    /// <summary>variant "base" = the plain <c>{family}_base</c> model, "lora" = PeftModel with <c>{family}_lora</c>.</summary>
    public static LoadedRunner Load(string family, string variant)
    {
        var model = AutoModel.FromPretrained(GoldenData.Dir($"{family}_base"));
        model.eval();
        if (variant == "base") return new LoadedRunner(new ModelRunner(model), model);
        var peft = PeftModel.FromPretrained(model, GoldenData.Dir($"{family}_{variant}"));
        return new LoadedRunner(new PeftModelRunner(peft), peft);
    }

    public static Dictionary<string, Tensor> Expected(string family) => GoldenData.Expected($"{family}_generate");

    public static long[,] ToArray2D(Tensor t)
    {
        using var cpu = t.to(ScalarType.Int64).cpu().contiguous();
        var flat = cpu.data<long>().ToArray();
        int rows = (int)t.shape[0], cols = (int)t.shape[1];
        var result = new long[rows, cols];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) result[i, j] = flat[i * cols + j];
        return result;
    }

    public static long[] Row(Tensor t, int row)
    {
        using var r = t.select(0, row).to(ScalarType.Int64).cpu().contiguous();
        return r.data<long>().ToArray();
    }

    /// <summary>
    /// Teacher-forced log-probability of each row's tokens after the prompt (positions from the mask as in generation,
    /// the mask extended with ones).
    /// </summary>
    public static double[] SequenceLogProbs(ICausalLmRunner runner, Tensor sequences, Tensor promptMask)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        long b = sequences.shape[0], total = sequences.shape[1], prompt = promptMask.shape[1];
        var mask = torch.cat([promptMask, torch.ones(b, total - prompt, dtype: ScalarType.Int64)], 1);
        var positions = (mask.cumsum(-1) - 1).masked_fill(mask.eq(0), 1);
        using var output = runner.Forward(new ForwardArgs { InputIds = sequences, AttentionMask = mask, PositionIds = positions }, null);
        var logp = output.Logits.narrow(1, prompt - 1, total - prompt).log_softmax(-1);
        var targets = sequences.narrow(1, prompt, total - prompt).unsqueeze(-1);
        var picked = logp.gather(-1, targets).squeeze(-1).to(ScalarType.Float64).sum(-1);
        return picked.data<double>().ToArray();
    }
}
