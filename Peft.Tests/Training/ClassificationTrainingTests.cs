using Peft.Tests.Support;
using Peft.Training.Data;
using Peft.Training.Models;
using Peft.Training.Nn;
using Peft.Training.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Training;

/// <summary>Sequence classification through the trainer (loss, accuracy, F1) with a tiny test-only model.</summary>
public class ClassificationTrainingTests
{
    /// <summary>Mean of token embeddings → linear head: enough to learn which words mark a class.</summary>
    private sealed class BagOfTokens : PretrainedModel
    {
#pragma warning disable IDE1006
        private readonly EmbeddingLayer embed;
        private readonly LinearLayer score;
#pragma warning restore IDE1006

        public BagOfTokens(int vocab, int classes)
            : base(nameof(BagOfTokens), ModelConfig.Parse("""{"model_type": "bag"}"""), TaskType.SequenceClassification, torch.CPU, ScalarType.Float32)
        {
            embed = new EmbeddingLayer(vocab, 16, torch.CPU, ScalarType.Float32);
            score = new LinearLayer(16, classes, true, torch.CPU, ScalarType.Float32);
            RegisterComponents();
        }

        public override int NumLayers => 0;
        public override int HiddenSize => 16;
        public override int NumAttentionHeads => 1;
        public override int NumKeyValueHeads => 1;
        public override int VocabSize => (int)embed.NumEmbeddings;
        public override EmbeddingLayer InputEmbeddings => embed;

        public override ModelOutput Forward(ForwardArgs args)
        {
            using var scope = torch.NewDisposeScope();
            var mask = args.AttentionMask!.unsqueeze(-1).to(ScalarType.Float32);
            var pooled = (embed.forward(args.InputIds!) * mask).sum(1) / mask.sum(1);
            return new ModelOutput { Logits = score.forward(pooled).MoveToOuterDisposeScope() };
        }
    }

    [Fact]
    public void ClassifierLearnsAndReportsAccuracyAndF1()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        using var tok = TinyModels.Tokenizer();
        var lines = new List<string>();
        string[] good = ["good", "great", "fine", "nice"], bad = ["bad", "awful", "poor", "sad"];
        for (int i = 0; i < 16; i++)
            lines.Add($$"""{"text": "a {{good[i % 4]}} day", "label": "pos"}""" + "\n" + $$"""{"text": "a {{bad[i % 4]}} day", "label": "neg"}""");
        File.WriteAllText(dir.File("cls.jsonl"), string.Join("\n", lines));
        var data = DatasetBuilder.Load(dir.File("cls.jsonl"), tok, new DatasetOptions { Task = TaskType.SequenceClassification });
        Assert.Equal(["neg", "pos"], data.LabelNames);
        using var model = new BagOfTokens(257, 2);
        model.InitWeights(1);
        var options = new TrainingOptions { OutputDir = dir.File("out"), MaxSteps = 60, BatchSize = 8, LearningRate = 5e-2, Seed = 1 };
        using var trainer = new Trainer(TrainableModel.ForFullFineTune(model), options, data, data, new DataCollator(TaskType.SequenceClassification, 0));
        var before = trainer.Evaluate(data);
        var result = trainer.Train();
        var after = result.FinalMetrics!;
        Assert.True(after["eval_loss"] < 0.5 * before["eval_loss"], $"loss {before["eval_loss"]} -> {after["eval_loss"]}");
        Assert.Equal(1.0, after["eval_accuracy"]);
        Assert.Equal(1.0, after["eval_f1"]);
        Assert.DoesNotContain("eval_perplexity", after.Keys);
    }

    [Fact]
    public void LossesAndMetricsFollowTransformers()
    {
        using var scope = torch.NewDisposeScope();
        var logits = torch.randn(2, 5, 7, generator: new Generator(3));
        var labels = torch.tensor(new long[] { 1, 2, 3, -100, 4, 0, -100, 5, 6, 6 }, [2, 5]);
        var ls = Losses.CausalLm(logits, labels);
        Assert.Equal(6, ls.Count); // labels[:, 1:] without -100
        var manual = nn.functional.cross_entropy(logits[.., ..4].reshape(-1, 7), labels[.., 1..].reshape(-1), ignore_index: -100);
        Assert.Equal(manual.item<float>(), ls.Mean().item<float>(), 5);
        // Two virtual tokens prepended by prompt tuning get label -100 (as PEFT does): the last one predicts the first real token.
        var withVirtual = torch.cat([torch.randn(2, 2, 7), logits], 1);
        var lv = Losses.CausalLm(withVirtual, labels, virtualTokens: 2);
        Assert.Equal(8, lv.Count);
        var manualV = nn.functional.cross_entropy(withVirtual[.., 1..6].reshape(-1, 7), labels.reshape(-1), ignore_index: -100);
        Assert.Equal(manualV.item<float>(), lv.Mean().item<float>(), 5);
        Assert.Equal(0.0, Losses.CausalLm(logits, torch.full(2, 5, -100L)).Mean().item<float>());
        // Macro F1 over labels {0, 1}: class 0 F1 = 2/3, class 1 F1 = 0.8.
        Assert.Equal((2.0 / 3 + 0.8) / 2, Evaluation.MacroF1([(0, 0), (0, 1), (1, 1), (1, 1)]), 12);
    }
}
