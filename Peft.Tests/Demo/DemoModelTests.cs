using Peft.Tests.Support;
using Peft.Training.Data;
using Peft.Training.Models;
using Peft.Training.Tokenization;
using Peft.Training.Training;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;

namespace Peft.Tests.Demo;

/// <summary>The bundled demo model (models/peft-demo, pretrained by tools/pretrain-demo.sh) and the committed corpora.</summary>
public class DemoModelTests
{
    internal static string RepoPath(string relative)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Peft.sln"))) return Path.Combine(d.FullName, relative);
        throw new DirectoryNotFoundException("repository root (Peft.sln) not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void LoadsWithItsParameterCountAndTokenizer()
    {
        string dir = RepoPath("models/peft-demo");
        using var model = AutoModel.FromPretrained(dir);
        Assert.Equal("llama", model.ModelType);
        Assert.Equal(6_450_432, model.UniqueNamedParameters().Sum(p => p.Param.numel()));
        using var tokenizer = AutoTokenizer.FromFolder(dir);
        Assert.Equal(8192, tokenizer.VocabSize);
        const string text = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.";
        var ids = tokenizer.Encode(text, addSpecialTokens: false);
        Assert.Equal(text, tokenizer.Decode(ids));
        Assert.True(ids.Count < 40, $"{ids.Count} tokens: the tokenizer was trained on this text's style");
    }

    [Fact]
    public void LoraTrainsOnTheCommittedCorpus()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        string dir = RepoPath("models/peft-demo");
        File.WriteAllLines(tmp["sotu.jsonl"], File.ReadLines(RepoPath("data/sotu_pre1900.jsonl")).Where(l => l.Contains("\"split\":\"validation\"")).Take(40));
        using var tokenizer = AutoTokenizer.FromFolder(dir);
        var data = DatasetBuilder.Load(tmp["sotu.jsonl"], tokenizer, new DatasetOptions { Format = DataFormat.Text, BlockSize = 128 });
        using var peft = PeftModel.Create(AutoModel.FromPretrained(dir), new LoraConfig { R = 8, LoraAlpha = 16 }, seed: 0);
        var options = new TrainingOptions { OutputDir = tmp["run"], MaxSteps = 3, BatchSize = 4, LearningRate = 1e-3, Seed = 0 };
        var model = TrainableModel.ForAdapter(peft);
        var collator = new DataCollator(TaskType.CausalLM, tokenizer.PadTokenId ?? tokenizer.EosTokenId ?? 0);
        double before = Evaluation.Run(model, collator, data, 4).Metrics["eval_loss"];
        using var trainer = new Trainer(model, options, data);
        var result = trainer.Train();
        Assert.Equal(3, result.StepLosses.Count);
        // A pretrained English model: far below the uniform guess over 8,192 tokens (ln 8192 = 9.01) from step 1 on.
        Assert.All(result.StepLosses, l => Assert.InRange(l, 2.0, 6.5));
        // Three steps of LoRA lower the loss on the data it trained on.
        double after = Evaluation.Run(model, collator, data, 4).Metrics["eval_loss"];
        Assert.True(after < before - 0.001, $"eval loss {before} -> {after}");
        Assert.True(File.Exists(Path.Combine(tmp["run"], "adapter_model.safetensors")));
    }
}
