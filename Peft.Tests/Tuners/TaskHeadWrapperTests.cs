using Peft.Tests.Models;
using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Tuners;

/// <summary>
/// PEFT's task wrappers: SEQ_CLS/TOKEN_CLS train and save <c>classifier</c>/<c>score</c>, QUESTION_ANS <c>qa_outputs</c>,
/// without writing them into adapter_config.json (PEFT 0.10), and "all-linear" never adapts those heads.
/// </summary>
public class TaskHeadWrapperTests
{
    private static PretrainedModel Load(string dir, TaskType task)
    {
        var m = AutoModel.FromPretrained(dir, new ModelLoadOptions { Task = task });
        m.eval();
        return m;
    }

    private static List<string> SavedKeys(string dir)
    {
        using var f = SafetensorsFile.Open(Path.Combine(dir, PeftModel.WeightsFileName));
        return f.Entries.Select(e => e.Name).Order(StringComparer.Ordinal).ToList();
    }

    [Theory]
    [InlineData("llama_base", TaskType.SequenceClassification, "score.weight")]
    [InlineData("gpt2_base", TaskType.SequenceClassification, "score.weight")]
    [InlineData("gpt2_base", TaskType.TokenClassification, "classifier.weight")]
    [InlineData("bert_base", TaskType.QuestionAnswering, "qa_outputs.weight")]
    public void TaskHeadIsTrainedAndSavedButNotWrittenToTheConfig(string baseCase, TaskType task, string headKey)
    {
        using var scope = torch.NewDisposeScope();
        using var dir = TaskHeadTests.CopyBase(baseCase, c => c["pad_token_id"] = 0);
        using var adapter = new TempDir();
        var ids = torch.tensor(new long[] { 5, 6, 7, 8, 5, 6, 0, 0 }, [2, 4]);
        var args = new ForwardArgs { InputIds = ids, AttentionMask = ids.ne(0).to(ScalarType.Int64) };
        Tensor before;
        using (var peft = PeftModel.Create(Load(dir.Path, task), new LoraConfig { R = 2, InitLoraWeights = System.Text.Json.Nodes.JsonValue.Create(false) }, seed: 4))
        {
            var head = peft.AdapterTensors("default").Single(t => t.CheckpointKey == "base_model.model." + headKey);
            Assert.True(head.Parameter.requires_grad);
            using (torch.no_grad()) head.Parameter.add_(0.25f);
            using (torch.no_grad())
            using (var o = peft.Forward(args)) before = o.Logits.clone();
            peft.SavePretrained(adapter.Path);
            Assert.Null(peft.ActiveConfig.ModulesToSave);
        }
        Assert.Contains("base_model.model." + headKey, SavedKeys(adapter.Path));
        Assert.Null(PeftConfigs.Load(adapter.Path).ModulesToSave);
        using var reloaded = PeftModel.FromPretrained(Load(dir.Path, task), adapter.Path);
        using var noGrad = torch.no_grad();
        using var after = reloaded.Forward(args);
        GoldenData.AssertClose(before, after.Logits, 1e-6, "reloaded adapter with its head");
    }

    [Fact]
    public void AllLinearLeavesTheRobertaClassifierToModulesToSave()
    {
        using var scope = torch.NewDisposeScope();
        using var adapter = new TempDir();
        var expected = GoldenData.Expected("roberta_base");
        var config = new LoraConfig { R = 2, TargetModules = "all-linear" };
        using var peft = PeftModel.Create(Load(GoldenData.Dir("roberta_base"), TaskType.SequenceClassification), config, seed: 1);
        var adapted = ((LoraTuner)peft.Tuner).Layers.Select(l => l.Path).ToList();
        Assert.Equal(2 * 6, adapted.Count);   // query, key, value, attention.output.dense, intermediate.dense, output.dense
        Assert.DoesNotContain(adapted, p => p.StartsWith("classifier", StringComparison.Ordinal));
        Assert.Equal(["dense", "key", "query", "value"], ((LoraConfig)peft.ActiveConfig).TargetModules!.Items!.Order(StringComparer.Ordinal));
        Assert.Equal("all-linear", config.TargetModules!.Pattern);   // the caller's config is not rewritten
        // A fresh LoRA and untouched head copies leave the output unchanged.
        using (torch.no_grad())
        using (var o = peft.Forward(new ForwardArgs { InputIds = expected["input_ids"], AttentionMask = expected["attention_mask"] }))
            GoldenData.AssertClose(expected["logits"], o.Logits, 1e-4, "logits");
        peft.SavePretrained(adapter.Path);
        var keys = SavedKeys(adapter.Path);
        Assert.Equal(["base_model.model.classifier.dense.bias", "base_model.model.classifier.dense.weight",
            "base_model.model.classifier.out_proj.bias", "base_model.model.classifier.out_proj.weight"],
            keys.Where(k => k.Contains(".classifier.", StringComparison.Ordinal)));
    }

    [Fact]
    public void FeatureExtractionSavesNoHead()
    {
        using var scope = torch.NewDisposeScope();
        using var peft = PeftModel.Create(Load(GoldenData.Dir("bert_base"), TaskType.FeatureExtraction), new LoraConfig { R = 2 }, seed: 1);
        Assert.Equal(TaskType.FeatureExtraction, peft.ActiveConfig.TaskType);
        Assert.All(peft.AdapterTensors("default"), t => Assert.Contains(".lora_", t.CheckpointKey));
        Assert.Equal(8, peft.AdapterTensors("default").Count());   // 2 layers × query, value × A, B
    }
}
