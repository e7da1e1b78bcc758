using System.Text.Json.Nodes;
using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using TorchSharp;

namespace Peft.Tests.Cli;

/// <summary>
/// Fine-tuning a bare encoder (architectures BertModel, as <c>peft import minilm</c> writes) into a classifier from the
/// CLI: <c>--task seq-cls</c> builds the head, the data names the classes, <c>--method head</c> trains the head alone,
/// LoRA trains the adapter plus the head, and <c>peft eval</c> scores the result exactly as the trainer did.
/// </summary>
public class CliClassificationTests
{
    private static string TokenizerDir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", "bert-tiny");

    /// <summary>A random tiny BERT saved as a bare encoder, with the WordPiece fixture tokenizer.</summary>
    private static string BareEncoder(TempDir tmp)
    {
        string dir = tmp["encoder"];
        var config = ModelConfig.Parse("""
            {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 92, "hidden_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 2,
             "pad_token_id": 0, "initializer_range": 0.1, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
            """);
        using (var model = AutoModel.FromConfig(config))
        {
            model.InitWeights(3);
            model.SavePretrained(dir);
        }
        foreach (var f in Directory.GetFiles(TokenizerDir)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    /// <summary>Two classes told apart by their words (all in the fixture's vocabulary).</summary>
    private static string Data(TempDir tmp)
    {
        string[] animal = ["the quick brown fox", "a lazy dog", "the dog and the fox", "a brown dog"];
        string[] tech = ["train the model", "test the token", "a model to train", "the token model"];
        var lines = Enumerable.Range(0, 24).SelectMany(i => new[]
        {
            new JsonObject { ["text"] = animal[i % 4], ["label"] = "animal" }.ToJsonString(),
            new JsonObject { ["text"] = tech[i % 4], ["label"] = "tech" }.ToJsonString(),
        });
        File.WriteAllLines(tmp["cls.jsonl"], lines);
        return tmp["cls.jsonl"];
    }

    private static string[] Train(string model, string data, string method, string outDir, params string[] extra) =>
        ["train", "--model", model, "--data", data, "--eval-data", data, "--format", "classification", "--task", "seq-cls",
         "--method", method, "--batch-size", "8", "--max-steps", "24", "--no-shuffle", "--json-events", "--out", outDir, .. extra];

    private static JsonNode Done(string stdout) =>
        JsonNode.Parse(stdout.Split('\n').Single(l => l.Contains("\"type\":\"done\"")))!;

    private static JsonNode Eval(params string[] args)
    {
        var r = CliHarness.Run(["eval", .. args]);
        r.AssertOk();
        return JsonNode.Parse(r.Out.Trim().Split('\n')[^1])!;
    }

    [Fact]
    public void HeadOnlyTrainsTheClassifierAloneAndSavesALoadableClassifier()
    {
        using var tmp = new TempDir();
        string model = BareEncoder(tmp), data = Data(tmp), outDir = tmp["head"];
        var r = CliHarness.Run(Train(model, data, "head", outDir, "--lr", "0.05"));
        r.AssertOk();

        var config = ModelConfig.FromFolder(outDir);
        Assert.Equal("BertForSequenceClassification", config.Json["architectures"]![0]!.GetValue<string>());
        Assert.Equal("animal", config.GetObject("id2label")!["0"]!.GetValue<string>());
        Assert.Equal("tech", config.GetObject("id2label")!["1"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(outDir, "tokenizer.json")), "the tokenizer travels with a trained model folder");
        var info = CliHarness.Run("info", outDir);
        info.AssertOk();
        Assert.Contains("SEQ_CLS", info.Out);
        Assert.Contains("animal, tech", info.Out);

        // Every encoder weight is the base's, bit for bit; only the new classifier moved.
        using var scope = torch.NewDisposeScope();
        using var before = SafetensorsFile.Open(Path.Combine(model, "model.safetensors"));
        using var after = SafetensorsFile.Open(Path.Combine(outDir, "model.safetensors"));
        var afterKeys = after.Entries.Select(e => e.Name).ToHashSet();
        var mapped = new List<string>();
        foreach (var key in before.Entries.Select(e => e.Name))
        {
            string saved = afterKeys.Contains(key) ? key : "bert." + key; // the classifier nests the encoder under "bert."
            Assert.True(before.Load(key).allclose(after.Load(saved), rtol: 0, atol: 0), $"{key} changed");
            mapped.Add(saved);
        }
        Assert.Equal(["classifier.bias", "classifier.weight"], afterKeys.Except(mapped).Order());

        // peft eval reads the saved head and labels back and scores exactly what the trainer's final evaluation did.
        var done = Done(r.Out);
        var eval = Eval(outDir, "--data", data);
        Assert.Equal(done["eval_accuracy"]!.GetValue<double>(), eval["eval_accuracy"]!.GetValue<double>(), 12);
        Assert.Equal(done["eval_loss"]!.GetValue<double>(), eval["eval_loss"]!.GetValue<double>(), 6);
        Assert.Equal(48, eval["labels"]!.GetValue<long>());
    }

    [Fact]
    public void LoraClassifierSavesTheHeadWithTheAdapterAndLearns()
    {
        using var tmp = new TempDir();
        string model = BareEncoder(tmp), data = Data(tmp), outDir = tmp["lora"];
        var untrained = CliHarness.Run(Train(model, data, "lora", tmp["lora0"], "--lr", "1e-9", "--max-steps", "1"));
        untrained.AssertOk();
        var r = CliHarness.Run(Train(model, data, "lora", outDir, "--lr", "0.02", "--r", "4"));
        r.AssertOk();

        var adapterConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "adapter_config.json")))!;
        Assert.Equal("SEQ_CLS", adapterConfig["task_type"]!.GetValue<string>());
        using (var f = SafetensorsFile.Open(Path.Combine(outDir, "adapter_model.safetensors")))
        {
            Assert.Contains("base_model.model.classifier.weight", f.Entries.Select(e => e.Name));
            Assert.Contains(f.Entries, e => e.Name.Contains("query.lora_A"));
        }

        var done = Done(r.Out);
        Assert.True(done["eval_loss"]!.GetValue<double>() < Done(untrained.Out)["eval_loss"]!.GetValue<double>() - 0.2, r.Out);
        Assert.Equal(1.0, done["eval_accuracy"]!.GetValue<double>());
        // The adapter's task_type makes eval build the classification head on the bare encoder.
        var eval = Eval(model, "--adapter", outDir, "--data", data);
        Assert.Equal(1.0, eval["eval_accuracy"]!.GetValue<double>());
        Assert.Equal(1.0, eval["eval_f1"]!.GetValue<double>());
        Assert.Equal(done["eval_loss"]!.GetValue<double>(), eval["eval_loss"]!.GetValue<double>(), 6);
    }

    [Fact]
    public void BadClassificationSetupsAreExitCodeTwo()
    {
        using var tmp = new TempDir();
        string model = BareEncoder(tmp), data = Data(tmp);
        File.WriteAllLines(tmp["one.jsonl"], File.ReadLines(data).Where(l => l.Contains("\"animal\"")));
        CliHarness.Run(Train(model, tmp["one.jsonl"], "head", tmp["a"])).AssertBadInput("one.jsonl", "animal", "two classes");
        CliHarness.Run(Train(model, data, "head", tmp["b"], "--task", "summarise")).AssertBadInput("--task", "summarise");
        CliHarness.Run(Train(model, data, "full", tmp["c"], "--modules-to-save", "classifier")).AssertBadInput("--modules-to-save", "full");
        CliHarness.Run(Train(model, data, "head", tmp["d"], "--task", "feature-extraction")).AssertBadInput("cls.jsonl", "FEATURE_EXTRACTION");
        // A language model has no task head to train alone.
        Peft.Tests.Training.TinyModels.SaveModelFolder(tmp["llama"]);
        CliHarness.Run("train", "--model", tmp["llama"], "--data", Peft.Tests.Training.TinyModels.Text("english-valid.txt"), "--method", "head",
            "--max-steps", "1", "--out", tmp["e"]).AssertBadInput("CAUSAL_LM", "no task head");
        Assert.False(new[] { "a", "b", "c", "d", "e" }.Any(d => Directory.Exists(tmp[d])), "a refused run writes nothing");
    }
}
