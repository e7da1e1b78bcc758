using System.Text.Json.Nodes;
using Peft.Tests.Cli;
using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Training;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Training;

/// <summary>
/// LoRA training on a batch with left- AND right-padded rows against PEFT 0.10 + torch AdamW
/// (Golden/*_lora_train_padded, every family). A left-padded causal row has a pad query that attends to nothing
/// valid; how each family masks it (additive, torch.where, masked_fill, clamp) decides which scores get gradients.
/// </summary>
public class GoldenPaddedTrainingTests
{
    public static TheoryData<string> Families => new() { "gpt2", "opt", "bloom", "llama", "t5", "bert" };

    private static string CaseName(string family) => $"{family}_lora_train_padded";

    private static ForwardArgs Args(Dictionary<string, Tensor> e) => new()
    {
        InputIds = e["input_ids"],
        AttentionMask = e["attention_mask"],
        DecoderInputIds = e.GetValueOrDefault("decoder_input_ids"),
    };

    [Theory, MemberData(nameof(Families))]
    public void FirstLossAndGradientsMatchPeft(string family)
    {
        using var scope = torch.NewDisposeScope();
        var model = AutoModel.FromPretrained(GoldenData.Dir($"{family}_base"), new ModelLoadOptions { Task = TaskFor(family) });
        model.eval();
        using var peft = PeftModel.FromPretrained(model, GoldenData.Dir(CaseName(family)), isTrainable: true);
        var expected = GoldenData.Expected(CaseName(family));
        using var output = peft.Forward(Args(expected));
        GoldenData.AssertClose(expected["logits"], output.Logits, 1e-4, "logits");
        var loss = Trainer.ComputeLoss(output.Logits, expected["labels"], model.Task).Mean();
        loss.backward();
        Assert.True(Math.Abs(expected["loss"].item<float>() - loss.item<float>()) <= 1e-5, $"loss {loss.item<float>()} vs {expected["loss"].item<float>()}");
        var grads = peft.AdapterTensors(peft.ActiveAdapter).ToDictionary(t => t.CheckpointKey, t => t.Parameter.grad!);
        Assert.Equal(expected.Keys.Count(k => k.StartsWith("grad.", StringComparison.Ordinal)), grads.Count);
        foreach (var (key, g) in grads) GoldenTrainingTests.AssertRelClose(expected["grad." + key], g, 1e-5, "grad." + key);
    }

    [Theory, MemberData(nameof(Families))]
    public void PeftTrainOnThePaddedRowsMatchesThreeAdamWSteps(string family)
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        var expected = GoldenData.Expected(CaseName(family));
        string model = GoldenData.ZeroDropoutCopy($"{family}_base", dir.Sub("model"));
        string data = dir.File("train.jsonl");
        WriteRows(expected, family, data);
        string outDir = dir.Sub("out");
        // The rows are pre-tokenized (input_ids, attention_mask, labels); the format is detected from the fields.
        var run = CliHarness.Run("train", "--model", model, "--data", data,
            "--init-adapter", GoldenData.Dir(CaseName(family)), "--no-shuffle", "--max-grad-norm", "0",
            "--batch-size", "4", "--max-steps", "3", "--scheduler", "constant", "--lr", "1e-2", "--weight-decay", "0.1",
            "--adam-beta1", "0.85", "--adam-beta2", "0.97", "--adam-epsilon", "1e-7", "--out", outDir, "--json-events");
        run.AssertOk();

        var losses = run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject())
            .Where(e => e["type"]!.GetValue<string>() == "step").Select(e => e["loss"]!.GetValue<double>()).ToArray();
        var stepLosses = expected["step_losses"].data<float>().ToArray();
        Assert.Equal(3, losses.Length);
        for (int i = 0; i < 3; i++)
            Assert.True(Math.Abs(stepLosses[i] - losses[i]) <= 1e-4 * stepLosses[i], $"step {i + 1} loss {losses[i]} vs {stepLosses[i]}");

        using var final = SafetensorsFile.Open(Path.Combine(outDir, PeftModel.WeightsFileName));
        var keys = expected.Keys.Where(k => k.StartsWith("final.", StringComparison.Ordinal)).Select(k => k["final.".Length..]).ToList();
        Assert.Equal(keys.Order(), final.Entries.Select(e => e.Name).Order());
        foreach (var key in keys)
        {
            // HF Trainer (which peft train follows) does not decay biases; the reference decays every parameter.
            if (key.EndsWith(".bias", StringComparison.Ordinal)) continue;
            GoldenData.AssertClose(expected["final." + key], final.Load(key), 1e-4, "final." + key);
        }
    }

    private static TaskType? TaskFor(string family) => family switch
    {
        "bert" => TaskType.SequenceClassification,
        _ => null,
    };

    /// <summary>The stored batch as pre-tokenized JSONL rows (input_ids, attention_mask, labels), one row per line.</summary>
    private static void WriteRows(Dictionary<string, Tensor> e, string family, string path)
    {
        long[][] Rows(string key)
        {
            var t = e[key];
            long n = t.shape[0];
            return Enumerable.Range(0, (int)n).Select(i => t[i].data<long>().ToArray()).ToArray();
        }
        var ids = Rows("input_ids");
        var mask = Rows("attention_mask");
        var lines = new List<string>();
        for (int i = 0; i < ids.Length; i++)
        {
            JsonNode labels = family == "bert"
                ? JsonValue.Create(e["labels"][i].item<long>())
                : new JsonArray(Rows("labels")[i].Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());
            lines.Add(new JsonObject
            {
                ["input_ids"] = new JsonArray(ids[i].Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
                ["attention_mask"] = new JsonArray(mask[i].Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
                ["labels"] = labels,
            }.ToJsonString());
        }
        File.WriteAllLines(path, lines);
    }
}
