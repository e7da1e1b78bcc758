using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Tuners.PromptLearning;

/// <summary>
/// Greedy decoding through the tuners with a key/value cache, the way a generation engine drives them: prefill with an
/// empty cache, then one token per step, the mask (real tokens only) growing by one column, no position ids.
/// </summary>
public class PromptLearningGenerationTests
{
    private static PeftModel Load(string caseName, string baseName)
    {
        var model = AutoModel.FromPretrained(GoldenData.Dir(baseName));
        model.eval();
        return PeftModel.FromPretrained(model, GoldenData.Dir(caseName));
    }

    /// <summary>Returns (sequences, scores [B, steps, vocab]).</summary>
    private static (Tensor Sequences, Tensor Scores) GreedyWithCache(PeftModel peft, Tensor ids, Tensor mask, int steps)
    {
        using var noGrad = torch.no_grad();
        using var cache = new KvCache(peft.BaseModel.NumLayers);
        var sequences = ids;
        var input = ids;
        var scores = new List<Tensor>();
        for (int i = 0; i < steps; i++)
        {
            using var o = peft.Forward(new ForwardArgs { InputIds = input, AttentionMask = mask, Cache = cache });
            var last = o.Logits.select(1, -1).clone();
            scores.Add(last);
            input = last.argmax(-1).unsqueeze(1);
            sequences = torch.cat([sequences, input], 1);
            mask = torch.cat([mask, torch.ones_like(input)], 1);
        }
        return (sequences, torch.stack(scores, 1));
    }

    /// <summary>The same loop without a cache: every step runs the whole sequence.</summary>
    private static (Tensor Sequences, Tensor Scores) GreedyWithoutCache(PeftModel peft, Tensor ids, Tensor mask, int steps)
    {
        using var noGrad = torch.no_grad();
        var sequences = ids;
        var scores = new List<Tensor>();
        for (int i = 0; i < steps; i++)
        {
            using var o = peft.Forward(new ForwardArgs { InputIds = sequences, AttentionMask = mask });
            var last = o.Logits.select(1, -1).clone();
            scores.Add(last);
            var next = last.argmax(-1).unsqueeze(1);
            sequences = torch.cat([sequences, next], 1);
            mask = torch.cat([mask, torch.ones_like(next)], 1);
        }
        return (sequences, torch.stack(scores, 1));
    }

    [Theory]
    [InlineData("b1")]
    [InlineData("b2")]
    public void PrefixTuningGenerationMatchesPeft(string batch)
    {
        // Golden llama_generate, variant prefix_tuning: transformers' generate() on the PEFT model; b2 is left-padded
        // and PEFT drops position_ids there, so every row's positions are past_length + index.
        using var scope = torch.NewDisposeScope();
        var g = GoldenData.Expected("llama_generate");
        using var peft = Load("llama_prefix_tuning", "llama_base");
        var (sequences, scores) = GreedyWithCache(peft, g[$"{batch}.input_ids"], g[$"{batch}.attention_mask"], 8);
        Assert.Equal(g[$"prefix_tuning.{batch}.sequences"].data<long>().ToArray(), sequences.data<long>().ToArray());
        GoldenData.AssertClose(g[$"prefix_tuning.{batch}.scores"], scores, 1e-4, "scores");
    }

    [Theory]
    [InlineData("llama_prefix_tuning", "llama_base")]
    [InlineData("llama_prompt_tuning", "llama_base")]
    [InlineData("gpt2_p_tuning", "gpt2_base")]
    [InlineData("gpt2_prefix_tuning_proj", "gpt2_base")]
    public void CachedDecodingEqualsFullRecomputation(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        var g = GoldenData.Expected("llama_generate");
        using var peft = Load(caseName, baseName);
        var ids = g["b2.input_ids"];
        var mask = g["b2.attention_mask"];
        var cached = GreedyWithCache(peft, ids, mask, 6);
        var full = GreedyWithoutCache(peft, ids, mask, 6);
        Assert.Equal(full.Sequences.data<long>().ToArray(), cached.Sequences.data<long>().ToArray());
        GoldenData.AssertClose(full.Scores, cached.Scores, 1e-4, "step scores");
    }

    [Fact]
    public void PrefixStaysInTheCallersCache()
    {
        using var scope = torch.NewDisposeScope();
        var e = GoldenData.Expected("llama_prefix_tuning");
        using var peft = Load("llama_prefix_tuning", "llama_base");
        using var cache = new KvCache(peft.BaseModel.NumLayers);
        using (torch.no_grad())
        using (var o = peft.Forward(new ForwardArgs { InputIds = e["input_ids"], AttentionMask = e["attention_mask"], Cache = cache }))
            GoldenData.AssertClose(e["logits"], o.Logits, 1e-4, "logits with an empty cache");
        Assert.Equal(5 + 7, cache.Length);
        // The prefix is the first 5 cached positions of layer 0's keys: block 0 of the saved prompt, [H_kv, T, hd].
        var expectedKey = e["prompt_embeddings_computed"].view(5, 4, 2, 16).select(1, 0).permute(1, 0, 2);
        GoldenData.AssertClose(expectedKey, cache.Get(0)!.Value.Key[1].narrow(1, 0, 5), 0, "layer 0 prefix keys");
    }
}
