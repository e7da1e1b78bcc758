using System.Text.Json.Nodes;
using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Models.Bert;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Models;

/// <summary>Task heads on the shared backbones: head maths, checkpoint layouts, new-head initialisation, pooling.</summary>
public class TaskHeadTests
{
    /// <summary>A copy of a golden base model with config.json edited (e.g. pad_token_id, num_labels).</summary>
    internal static TempDir CopyBase(string caseName, Action<JsonObject>? edit = null)
    {
        var dir = new TempDir();
        foreach (var f in Directory.GetFiles(GoldenData.Dir(caseName))) File.Copy(f, Path.Combine(dir.Path, Path.GetFileName(f)));
        if (edit is not null)
        {
            var json = JsonNode.Parse(File.ReadAllText(dir.Sub("config.json")))!.AsObject();
            edit(json);
            File.WriteAllText(dir.Sub("config.json"), json.ToJsonString());
        }
        return dir;
    }

    private static ModelOutput Run(PretrainedModel model, Tensor ids, Tensor? mask, bool states = false)
    {
        model.eval();
        using var noGrad = torch.no_grad();
        return model.Forward(new ForwardArgs { InputIds = ids, AttentionMask = mask, OutputHiddenStates = states });
    }

    private static Tensor Param(PretrainedModel m, string name) => m.named_parameters().Single(p => p.name == name).parameter;

    [Theory]
    [InlineData("bert_base", "hidden_states.2")]
    [InlineData("roberta_base", "hidden_states.2")]
    public void BareEncoderLoadsAClassifierCheckpoint(string caseName, string lastState)
    {
        using var scope = torch.NewDisposeScope();
        var expected = GoldenData.Expected(caseName);
        using var model = AutoModel.FromPretrained(GoldenData.Dir(caseName), new ModelLoadOptions { Task = TaskType.FeatureExtraction });
        Assert.IsType<BertModel>(model);
        Assert.Contains(model.named_parameters(), p => p.name == "embeddings.word_embeddings.weight");
        // BERT's checkpoint has bert.pooler; RoBERTa's classifier has no pooler, so a fresh one is initialised.
        Assert.Equal(caseName == "bert_base" ? [] : ["pooler.dense.weight", "pooler.dense.bias"], model.NewlyInitializedWeights);
        using var output = Run(model, expected["input_ids"], expected["attention_mask"]);
        GoldenData.AssertClose(expected[lastState], output.LastHiddenState!, 1e-4, "last hidden state");
        GoldenData.AssertClose(expected[lastState], output.Logits, 1e-4, "feature-extraction logits");
    }

    [Fact]
    public void BareCheckpointLoadsIntoHeadModels()
    {
        using var scope = torch.NewDisposeScope();
        var expected = GoldenData.Expected("bert_base");
        using var bare = new TempDir();
        using (var model = AutoModel.FromPretrained(GoldenData.Dir("bert_base"), new ModelLoadOptions { Task = TaskType.FeatureExtraction }))
            model.SavePretrained(bare.Path);
        using var qa = AutoModel.FromPretrained(bare.Path, new ModelLoadOptions { Task = TaskType.QuestionAnswering });
        Assert.Equal(["qa_outputs.weight", "qa_outputs.bias"], qa.NewlyInitializedWeights);
        Assert.Equal(0, Param(qa, "qa_outputs.bias").abs().sum().item<float>());
        using var output = Run(qa, expected["input_ids"], expected["attention_mask"]);
        Assert.Equal([2L, 7, 2], output.Logits.shape);
        var manual = nn.functional.linear(expected["hidden_states.2"], Param(qa, "qa_outputs.weight"), Param(qa, "qa_outputs.bias"));
        GoldenData.AssertClose(manual, output.Logits, 1e-4, "qa logits = qa_outputs(last hidden)");
    }

    [Fact]
    public void TokenClassifierAppliesTheClassifierPerToken()
    {
        using var scope = torch.NewDisposeScope();
        var expected = GoldenData.Expected("bert_base");
        using var model = AutoModel.FromPretrained(GoldenData.Dir("bert_base"), new ModelLoadOptions { Task = TaskType.TokenClassification });
        Assert.Empty(model.NewlyInitializedWeights);   // same name and shape as the sequence classifier's
        using var output = Run(model, expected["input_ids"], expected["attention_mask"]);
        var manual = nn.functional.linear(expected["hidden_states.2"], Param(model, "classifier.weight"), Param(model, "classifier.bias"));
        GoldenData.AssertClose(manual, output.Logits, 1e-4, "token logits");
    }

    [Theory]
    [InlineData("llama_base", "score.weight")]
    [InlineData("qwen2_base", "score.weight")]
    [InlineData("gpt2_base", "score.weight")]
    [InlineData("opt_base", "score.weight")]
    [InlineData("bloom_base", "score.weight")]
    public void DecoderSequenceClassifierPoolsTheLastNonPadToken(string caseName, string head)
    {
        using var scope = torch.NewDisposeScope();
        using var dir = CopyBase(caseName, c => { c["pad_token_id"] = 0; c["num_labels"] = 3; });
        using var lm = AutoModel.FromPretrained(dir.Path);
        using var cls = AutoModel.FromPretrained(dir.Path, new ModelLoadOptions { Task = TaskType.SequenceClassification });
        Assert.Equal([head], cls.NewlyInitializedWeights);
        // Row 0 without pads (→ last token), row 1 right-padded (→ index 4), row 2 left-padded (→ wraps to the last token).
        var ids = torch.tensor(new long[] { 5, 6, 7, 8, 9, 10, 11, 5, 6, 7, 8, 9, 0, 0, 0, 0, 5, 6, 7, 8, 9 }, [3, 7]);
        var mask = ids.ne(0).to(ScalarType.Int64);
        using var lmOut = Run(lm, ids, mask);
        using var output = Run(cls, ids, mask);
        GoldenData.AssertClose(lmOut.LastHiddenState!, output.LastHiddenState!, 0, "shared backbone");
        var all = nn.functional.linear(lmOut.LastHiddenState!, Param(cls, head));
        var manual = torch.stack([all[0, 6], all[1, 4], all[2, 6]]);
        Assert.Equal([3L, 3], output.Logits.shape);
        GoldenData.AssertClose(manual, output.Logits, 1e-5, "pooled logits");
    }

    [Fact]
    public void DecoderSequenceClassifierNeedsAPadTokenForBatches()
    {
        using var scope = torch.NewDisposeScope();
        using var model = AutoModel.FromPretrained(GoldenData.Dir("llama_base"), new ModelLoadOptions { Task = TaskType.SequenceClassification });
        var ids = torch.ones(2, 4, ScalarType.Int64);
        var e = Assert.Throws<ArgumentException>(() => Run(model, ids, null));
        Assert.Contains("pad_token_id", e.Message);
        using var single = Run(model, ids[..1], null);   // one row: the last position
        Assert.Equal([1L, 2], single.Logits.shape);
    }

    [Theory]
    [InlineData("gpt2_base")]
    [InlineData("bloom_base")]
    public void DecoderTokenClassifier(string caseName)
    {
        using var scope = torch.NewDisposeScope();
        var expected = GoldenData.Expected(caseName);
        using var model = AutoModel.FromPretrained(GoldenData.Dir(caseName), new ModelLoadOptions { Task = TaskType.TokenClassification });
        Assert.Equal(["classifier.weight", "classifier.bias"], model.NewlyInitializedWeights);
        using var output = Run(model, expected["input_ids"], expected["attention_mask"]);
        int last = expected.Keys.Count(k => k.StartsWith("hidden_states.", StringComparison.Ordinal)) - 1;
        var manual = nn.functional.linear(expected[$"hidden_states.{last}"], Param(model, "classifier.weight"), Param(model, "classifier.bias"));
        GoldenData.AssertClose(manual, output.Logits, 1e-4, "token logits");
    }

    [Fact]
    public void MissingHeadsAreRejectedWithTheAvailableList()
    {
        var config = ModelConfig.FromFolder(GoldenData.Dir("llama_base"));
        var e = Assert.Throws<PeftUserException>(() => AutoModel.FromConfig(config, new ModelLoadOptions { Task = TaskType.TokenClassification, Device = torch.META }));
        Assert.Contains("CAUSAL_LM, SEQ_CLS", e.Message);
    }

    [Theory]
    [InlineData("BertForSequenceClassification", TaskType.SequenceClassification)]
    [InlineData("RobertaForTokenClassification", TaskType.TokenClassification)]
    [InlineData("BertForQuestionAnswering", TaskType.QuestionAnswering)]
    [InlineData("BertModel", TaskType.FeatureExtraction)]
    [InlineData("GPT2LMHeadModel", TaskType.CausalLM)]
    [InlineData("LlamaForCausalLM", TaskType.CausalLM)]
    [InlineData("RobertaForMaskedLM", null)]
    public void TaskComesFromArchitectures(string architecture, TaskType? task)
    {
        var config = ModelConfig.Parse($$"""{"model_type": "bert", "architectures": ["{{architecture}}"]}""");
        Assert.Equal(task, AutoModel.TaskFromArchitectures(config));
    }

    [Theory]
    [InlineData("{\"id2label\": {\"0\": \"a\", \"1\": \"b\", \"2\": \"c\", \"3\": \"d\"}}", 4)]
    [InlineData("{\"num_labels\": 5}", 5)]
    [InlineData("{}", 2)]
    public void NumLabelsFollowsTransformers(string json, int expected) =>
        Assert.Equal(expected, TaskHeads.NumLabels(ModelConfig.Parse(json)));
}
