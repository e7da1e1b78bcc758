using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Tuners;

/// <summary>One adapter per batch row (PEFT's <c>adapter_names</c>), against PEFT 0.10's mixed-batch logits.</summary>
public class MixedBatchTests
{
    private static PeftModel LoadBoth(string caseName, string baseName)
    {
        var model = AutoModel.FromPretrained(GoldenData.Dir(baseName));
        model.eval();
        var peft = PeftModel.FromPretrained(model, Path.Combine(GoldenData.Dir(caseName), "adapter_a"), "adapter_a");
        peft.LoadAdapter(Path.Combine(GoldenData.Dir(caseName), "adapter_b"), "adapter_b");
        return peft;
    }

    /// <summary>The llama mixed-batch case: both adapters loaded, PEFT's expected tensors, and their inputs as forward arguments.</summary>
    private static (PeftModel Peft, Dictionary<string, Tensor> Expected, ForwardArgs Args) LlamaMixedCase()
    {
        var e = GoldenData.Expected("llama_lora_mixed_batch");
        return (LoadBoth("llama_lora_mixed_batch", "llama_base"), e, new ForwardArgs { InputIds = e["input_ids"], AttentionMask = e["attention_mask"] });
    }

    [Theory]
    [InlineData("llama_lora_mixed_batch", "llama_base")]
    [InlineData("gpt2_lora_mixed_batch", "gpt2_base")]
    public void RowsGetTheirOwnAdapter(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var peft = LoadBoth(caseName, baseName);
        var e = GoldenData.Expected(caseName);
        var args = new ForwardArgs { InputIds = e["input_ids"], AttentionMask = e["attention_mask"] };
        using var noGrad = torch.no_grad();
        using (var o = peft.Forward(args, ["adapter_a", "adapter_b"]))
            GoldenData.AssertClose(e["logits_mixed_a_b"], o.Logits, 1e-4, "mixed a,b");
        using (var o = peft.Forward(args, ["adapter_b", "__base__"]))
            GoldenData.AssertClose(e["logits_mixed_b_base"], o.Logits, 1e-4, "mixed b,base");
        peft.SetAdapter("adapter_b");
        using (var o = peft.Forward(args))
            GoldenData.AssertClose(e["logits_adapter_b"], o.Logits, 1e-4, "whole batch through adapter_b");
        peft.SetAdapter("adapter_a");
        using (var o = peft.Forward(args))
            GoldenData.AssertClose(e["logits_adapter_a"], o.Logits, 1e-4, "whole batch through adapter_a");
        using (var o = peft.Forward(args, ["__base__", "__base__"]))
            GoldenData.AssertClose(e["base_logits"], o.Logits, 1e-4, "all rows base");
    }

    [Fact]
    public void StableRowsKeepTheirGatheredFactorsStayExactAndSeeAHotSwap()
    {
        // A decode loop passes one StableRowAdapters instance step after step; layers keep the stacks they gather.
        using var scope = torch.NewDisposeScope();
        var (peft, e, args) = LlamaMixedCase();
        using var owned = peft;
        using var noGrad = torch.no_grad();
        var rows = new StableRowAdapters(["adapter_a", "adapter_b"]);
        for (int step = 0; step < 3; step++)
            using (var o = peft.Forward(args, rows))
                GoldenData.AssertClose(e["logits_mixed_a_b"], o.Logits, 1e-4, $"mixed a,b, pass {step}");
        using (var o = peft.Forward(args, new StableRowAdapters(["adapter_b", "adapter_b"])))
            GoldenData.AssertClose(e["logits_adapter_b"], o.Logits, 1e-4, "every row on adapter_b");
        using (var o = peft.Forward(args, new StableRowAdapters(["adapter_b", "__base__"])))
            GoldenData.AssertClose(e["logits_mixed_b_base"], o.Logits, 1e-4, "mixed b,base");
        peft.ReleaseRowCaches();
        using (var o = peft.Forward(args, rows))
            GoldenData.AssertClose(e["logits_mixed_a_b"], o.Logits, 1e-4, "mixed a,b after release");
        // Even a caller that keeps its rows instance across a hot swap must not be served the old factors.
        peft.HotswapAdapter(Path.Combine(GoldenData.Dir("llama_lora_mixed_batch"), "adapter_b"), "adapter_a");
        using (var o = peft.Forward(args, rows))
            GoldenData.AssertClose(e["logits_adapter_b"], o.Logits, 1e-4, "adapter_a now holds adapter_b's weights");
    }

    [Fact]
    public void PooledSlotsFollowDeletesReusedSlotsGrowthAndLargerRanks()
    {
        // Stable rows gather from per-layer slots that outlive a batch: a deleted adapter's slot is reused by the next
        // one, the pool grows past its first 8 slots, and a larger rank widens it; each must give the right factors.
        using var scope = torch.NewDisposeScope();
        var (peft, e, args) = LlamaMixedCase();
        using var owned = peft;
        using var noGrad = torch.no_grad();
        string dirA = Path.Combine(GoldenData.Dir("llama_lora_mixed_batch"), "adapter_a"), dirB = Path.Combine(GoldenData.Dir("llama_lora_mixed_batch"), "adapter_b");
        using (var o = peft.Forward(args, new StableRowAdapters(["adapter_a", "adapter_b"])))
            GoldenData.AssertClose(e["logits_mixed_a_b"], o.Logits, 1e-4, "mixed a,b");
        peft.DeleteAdapter("adapter_a");
        peft.LoadAdapter(dirB, "x");   // takes adapter_a's freed slot
        using (var o = peft.Forward(args, new StableRowAdapters(["x", "adapter_b"])))
            GoldenData.AssertClose(e["logits_adapter_b"], o.Logits, 1e-4, "x (adapter_b's weights) in adapter_a's old slot");
        for (int i = 0; i < 10; i++)
        {
            peft.LoadAdapter(dirA, $"a{i}");
            using var o = peft.Forward(args, new StableRowAdapters([$"a{i}", i % 2 == 0 ? "adapter_b" : "x"]));
            GoldenData.AssertClose(e["logits_mixed_a_b"], o.Logits, 1e-4, $"a{i} (slot {i + 3})");
        }
        // A rank-8 adapter widens the pool: stable rows agree with the plain per-row path, rank-4 rows stay exact.
        peft.AddAdapter("r8", new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = StringOrList.Of(["q_proj", "v_proj"]) });
        using (var gen = new Generator(5))
            foreach (var t in peft.AdapterTensors("r8"))
                if (t.CheckpointKey.Contains("lora_B")) t.Parameter.copy_(randn(t.Parameter.shape, generator: gen) * 0.3);
        using var plain = peft.Forward(args, ["r8", "a3"]);
        using (var o = peft.Forward(args, new StableRowAdapters(["r8", "a3"])))
        {
            GoldenData.AssertClose(plain.Logits, o.Logits, 1e-5, "r8 and a3, stable rows vs per-row path");
            GoldenData.AssertClose(e["logits_adapter_a"][1], o.Logits[1], 1e-4, "a3's row beside a rank-8 row");
        }
        using (var o = peft.Forward(args, new StableRowAdapters(["a3", "adapter_b"])))
            GoldenData.AssertClose(e["logits_mixed_a_b"], o.Logits, 1e-4, "rank-4 rows in the widened pool");
        Assert.True(GoldenData.MaxAbsDiff(e["base_logits"][0], plain.Logits[0]) > 1e-2, "r8 changes its row (else the comparison proves nothing)");
    }

    [Fact]
    public void BadAdapterNamesAreRejected()
    {
        using var scope = torch.NewDisposeScope();
        var (peft, e, args) = LlamaMixedCase();
        using var owned = peft;
        using var noGrad = torch.no_grad();
        var unknown = Assert.Throws<ArgumentException>(() => peft.Forward(args, ["adapter_a", "nope"]));
        Assert.Contains("'nope'", unknown.Message);
        var count = Assert.Throws<ArgumentException>(() => peft.Forward(args, ["adapter_a"]));
        Assert.Contains("1 entries but the batch has 2 rows", count.Message);
        peft.MergeAdapter();
        var merged = Assert.Throws<InvalidOperationException>(() => peft.Forward(args, ["adapter_a", "adapter_b"]));
        Assert.Contains("merged", merged.Message);
    }

    [Fact]
    public void SeveralActiveAdaptersAreSummed()
    {
        using var scope = torch.NewDisposeScope();
        var (peft, e, args) = LlamaMixedCase();
        using var owned = peft;
        using var noGrad = torch.no_grad();
        peft.SetAdapters(["adapter_a", "adapter_b"]);
        using var both = peft.Forward(args);
        // Each LoRA delta is additive per layer, but layers compose non-linearly, so compare against a merge of both.
        peft.MergeAdapter();
        using var merged = peft.Forward(args);
        GoldenData.AssertClose(merged.Logits, both.Logits, 1e-4, "two active adapters vs both merged");
        Assert.True(GoldenData.MaxAbsDiff(both.Logits, e["logits_adapter_a"]) > 1e-2, "second adapter had no effect");
    }
}
