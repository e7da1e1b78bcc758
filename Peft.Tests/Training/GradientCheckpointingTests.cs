using Peft.Training.Data;
using Peft.Training.Models;
using Peft.Training.Training;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Training;

/// <summary>
/// Checkpointed decoder layers give the gradients of the plain forward (1e-5): full fine-tuning, LoRA on some layers
/// only (the first layer's input needs no grad and it has no trainable weights), and LoRA dropout (RNG replayed).
/// </summary>
[Collection(GlobalRngCollection.Name)]
public class GradientCheckpointingTests
{
    private static Dictionary<string, Tensor> Grads(PretrainedModel model, IEnumerable<(string Name, TorchSharp.Modules.Parameter P)> ps, Batch batch, bool checkpointing)
    {
        model.GradientCheckpointing = checkpointing;
        torch.manual_seed(1234);
        using (var output = model.Forward(batch.ToForwardArgs()))
            Losses.CausalLm(output.Logits, batch.Labels).Mean().backward();
        model.GradientCheckpointing = false;
        var grads = new Dictionary<string, Tensor>();
        foreach (var (name, p) in ps)
        {
            if (p.grad is null) continue;
            grads[name] = p.grad.clone();
            p.grad = null;
        }
        return grads;
    }

    private static Batch SomeBatch()
    {
        var data = TinyModels.TextBlocks(24);
        return new DataCollator(TaskType.CausalLM, 0).Collate(data.Examples.Take(3).ToList());
    }

    private static void AssertSame(Dictionary<string, Tensor> plain, Dictionary<string, Tensor> checkpointed, int expectedCount)
    {
        Assert.Equal(expectedCount, plain.Count);
        Assert.Equal(plain.Keys.Order(), checkpointed.Keys.Order());
        foreach (var (k, g) in plain) Support.GoldenData.AssertClose(g, checkpointed[k], 1e-5, k);
    }

    [Fact]
    public void FullFineTuningGradientsMatch()
    {
        using var scope = torch.NewDisposeScope();
        using var model = TinyModels.Llama(layers: 3);
        var trainable = TrainableModel.ForFullFineTune(model);
        using var batch = SomeBatch();
        var ps = trainable.Parameters().Select(p => (p.Name, p.Parameter)).ToList();
        AssertSame(Grads(model, ps, batch, false), Grads(model, ps, batch, true), ps.Count);
    }

    [Fact]
    public void LoraOnLaterLayersAndWithDropoutMatches()
    {
        using var scope = torch.NewDisposeScope();
        var config = new LoraConfig { R = 4, LoraAlpha = 8, LoraDropout = 0.3, TargetModules = StringOrList.Of(["q_proj", "v_proj", "down_proj"]), LayersToTransform = [1, 2] };
        using var peft = PeftModel.Create(TinyModels.Llama(layers: 3), config, seed: 2);
        peft.BaseModel.train(); // dropout active: the recompute must replay the same masks
        using var batch = SomeBatch();
        var ps = TrainableModel.ForAdapter(peft).Parameters().Select(p => (p.Name, p.Parameter)).ToList();
        AssertSame(Grads(peft.BaseModel, ps, batch, false), Grads(peft.BaseModel, ps, batch, true), ps.Count);
        Assert.DoesNotContain(ps, p => p.Name.Contains("layers.0."));
    }
}
