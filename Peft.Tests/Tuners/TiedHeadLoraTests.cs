using Peft.Tests.Training;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Tuners;

/// <summary>
/// LoRA on an output head whose weight is tied to the input embeddings (models/peft-demo's layout): it trains and runs
/// unmerged, touching only the output side, and merging is refused because it would rewrite the embeddings too.
/// </summary>
public class TiedHeadLoraTests
{
    private static PretrainedModel TiedLlama()
    {
        var json = TinyModels.LlamaConfig().Json;
        json["tie_word_embeddings"] = true;
        var model = AutoModel.FromConfig(new ModelConfig(json));
        model.InitWeights(5);
        model.eval();
        return model;
    }

    [Fact]
    public void AnLmHeadAdapterChangesOnlyTheOutputSideAndRefusesToMerge()
    {
        using var scope = torch.NewDisposeScope();
        using var peft = PeftModel.Create(TiedLlama(), new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = StringOrList.Of("lm_head") }, seed: 1);
        var embed = peft.BaseModel.InputEmbeddings.weight;
        var embedBefore = embed.detach().clone();
        // Give B non-zero values so the adapter has an effect.
        using (torch.no_grad())
            foreach (var (_, p) in peft.BaseModel.named_parameters().Where(x => x.name.Contains("lora_B")))
                p.copy_(torch.randn(p.shape, generator: torch.manual_seed(2)) * 0.1);

        var ids = torch.tensor(new long[] { 3, 17, 42, 99, 7 }).unsqueeze(0);
        Tensor adapted, plain;
        using (torch.no_grad())
        {
            adapted = peft.Forward(new ForwardArgs { InputIds = ids }).Logits.clone();
            using (peft.DisableAdapters()) plain = peft.Forward(new ForwardArgs { InputIds = ids }).Logits.clone();
        }
        Assert.False(adapted.allclose(plain, rtol: 0, atol: 1e-6), "the lm_head adapter must change the logits");

        var e = Assert.Throws<PeftUserException>(() => peft.MergeAndUnload());
        Assert.Contains("lm_head", e.Message);
        Assert.Contains("tie", e.Message);
        // Nothing was merged: the shared table is untouched and the adapter still runs.
        Assert.True(embed.allclose(embedBefore, rtol: 0, atol: 0));
        using (torch.no_grad())
            Assert.True(peft.Forward(new ForwardArgs { InputIds = ids }).Logits.allclose(adapted, rtol: 0, atol: 1e-6));
    }
}
