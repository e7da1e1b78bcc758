using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Models.Bert;
using TorchSharp;

namespace Peft.Tests.Models;

/// <summary>
/// Loading a checkpoint with another head or new class names (transformers' <c>from_pretrained(num_labels=...,
/// id2label=...)</c>): the saved fine-tune must describe its own head so it loads back as what it is.
/// </summary>
public class TaskHeadLoadingTests
{
    [Fact]
    public void ABareEncoderFineTunedAsAClassifierSavesAndReloadsAsOne()
    {
        using var scope = torch.NewDisposeScope();
        using var bare = new TempDir();
        using var tuned = new TempDir();
        using (var encoder = AutoModel.FromPretrained(GoldenData.Dir("bert_base"), new ModelLoadOptions { Task = TaskType.FeatureExtraction }))
            encoder.SavePretrained(bare.Path);
        Assert.Equal("BertModel", ModelConfig.FromFolder(bare.Path).Json["architectures"]![0]!.GetValue<string>());
        Assert.Equal(TaskType.FeatureExtraction, AutoModel.ResolveTask(ModelConfig.FromFolder(bare.Path), null));

        using var classifier = AutoModel.FromPretrained(bare.Path, new ModelLoadOptions { Task = TaskType.SequenceClassification, Labels = ["ham", "spam"] });
        Assert.Equal(["classifier.weight", "classifier.bias"], classifier.NewlyInitializedWeights);
        classifier.SavePretrained(tuned.Path);

        var saved = ModelConfig.FromFolder(tuned.Path);
        Assert.Equal("BertForSequenceClassification", saved.Json["architectures"]![0]!.GetValue<string>());
        Assert.Equal(["ham", "spam"], TaskHeads.LabelNames(saved));
        Assert.Equal(1, saved.GetObject("label2id")!["spam"]!.GetValue<int>());
        using var reloaded = AutoModel.FromPretrained(tuned.Path);
        Assert.IsType<BertForSequenceClassification>(reloaded);
        Assert.Empty(reloaded.NewlyInitializedWeights);
        var w = reloaded.named_parameters().Single(p => p.name == "classifier.weight").parameter;
        Assert.Equal([2L, 64], w.shape);
        Assert.True(w.allclose(classifier.named_parameters().Single(p => p.name == "classifier.weight").parameter, rtol: 0, atol: 0));
        // The source folder's config is untouched by the relabelled load.
        Assert.Equal("BertModel", ModelConfig.FromFolder(bare.Path).Json["architectures"]![0]!.GetValue<string>());
    }

    [Fact]
    public void ADifferentClassCountCannotReuseAClassifier()
    {
        // bert_base's classifier is 3-way; transformers needs ignore_mismatched_sizes=True here, we refuse and name the weight.
        var e = Assert.Throws<ModelLoadException>(() => AutoModel.FromPretrained(GoldenData.Dir("bert_base"), new ModelLoadOptions { Labels = ["a", "b", "c", "d"] }));
        Assert.Contains("classifier.weight", e.Message);
        Assert.Contains("[4, 64]", e.Message);
        using var same = AutoModel.FromPretrained(GoldenData.Dir("bert_base"), new ModelLoadOptions { Labels = ["neg", "neu", "pos"] });
        Assert.Equal(["neg", "neu", "pos"], TaskHeads.LabelNames(same.Config));
    }

    [Fact]
    public void PlaceholderLabelsLetTheDataNameTheClasses()
    {
        Assert.Null(TaskHeads.LabelNames(ModelConfig.FromFolder(GoldenData.Dir("bert_base")))); // LABEL_0..LABEL_2
        Assert.Equal(["x", "y"], TaskHeads.LabelNames(ModelConfig.Parse("""{"model_type": "bert", "id2label": {"1": "y", "0": "x"}}""")));
        Assert.Throws<ModelConfigException>(() => TaskHeads.LabelNames(ModelConfig.Parse("""{"model_type": "bert", "id2label": {"0": "x", "5": "y"}}""")));
    }

    [Theory]
    [InlineData("""{"model_type": "llama"}""", TaskType.SequenceClassification, "LlamaForSequenceClassification")]
    [InlineData("""{"model_type": "gpt2"}""", TaskType.CausalLM, "GPT2LMHeadModel")]
    [InlineData("""{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}""", TaskType.TokenClassification, "GPT2ForTokenClassification")]
    [InlineData("""{"model_type": "opt", "architectures": ["OPTForCausalLM"]}""", TaskType.SequenceClassification, "OPTForSequenceClassification")]
    [InlineData("""{"model_type": "bert", "architectures": ["BertForSequenceClassification"]}""", TaskType.FeatureExtraction, "BertModel")]
    [InlineData("""{"model_type": "xlm-roberta"}""", TaskType.QuestionAnswering, "XLMRobertaForQuestionAnswering")]
    public void HeadClassNamesAreTransformers(string json, TaskType task, string expected) =>
        Assert.Equal(expected, AutoModel.HeadClassName(ModelConfig.Parse(json), task));
}
