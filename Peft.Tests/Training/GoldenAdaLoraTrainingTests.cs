using System.Text.Json.Nodes;
using Peft.Tests.Support;
using Peft.Training.Data;
using Peft.Training.Training;
using Peft.Training.Tuners;
using Peft.Training.Tuners.AdaLora;
using TorchSharp;

namespace Peft.Tests.Training;

/// <summary>
/// Golden/llama_adalora_train through the project's Trainer: the trainer adds the orthogonal regulariser and calls
/// update_and_allocate itself (PEFT users must do both by hand). Step losses (1e-4 relative) and the rank pattern
/// after every step (exact) match PEFT 0.10.
/// </summary>
public class GoldenAdaLoraTrainingTests
{
    [Fact]
    public void TrainerRunsTheRankScheduleLikePeft()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        using var peft = GoldenTrainingTests.LoadTrainable("llama_adalora_train", "llama_base");
        var expected = GoldenData.Expected("llama_adalora_train");
        var ids = expected["input_ids"].data<long>().ToArray();
        var mask = expected["attention_mask"].data<long>().ToArray();
        int len = (int)expected["input_ids"].shape[1];
        var labels = ids.Select((id, i) => mask[i] == 0 ? -100L : id).ToArray();
        var rows = Enumerable.Range(0, 2).Select(i => new Example(ids[(i * len)..((i + 1) * len)], labels[(i * len)..((i + 1) * len)], mask[(i * len)..((i + 1) * len)])).ToList();
        var config = (AdaLoraConfig)peft.ActiveConfig;
        var patterns = new Dictionary<int, Dictionary<string, int>?>();
        var progress = new SyncProgress<TrainingEvent>(e =>
        {
            if (e.Kind != TrainingEventKind.Step) return;
            patterns[e.Step - 1] = config.RankPattern?.ToDictionary(kv => kv.Key, kv => kv.Value.Count(k => k));
        });
        var options = new TrainingOptions
        {
            OutputDir = dir.Path, MaxSteps = 4, BatchSize = 2, LearningRate = 1e-2, WeightDecay = 0, MaxGradNorm = 0,
            Scheduler = SchedulerKind.Constant, Shuffle = false,
        };
        using var trainer = new Trainer(TrainableModel.ForAdapter(peft), options, new TrainingDataset(rows, new DatasetStats()), progress: progress);
        var result = trainer.Train();

        var stepLosses = expected["step_losses"].data<float>().ToArray();
        for (int i = 0; i < 4; i++)
            Assert.True(Math.Abs(stepLosses[i] - result.StepLosses[i]) <= 1e-4 * stepLosses[i], $"step {i} loss {result.StepLosses[i]} vs {stepLosses[i]}");
        var schedule = JsonNode.Parse(File.ReadAllText(Path.Combine(GoldenData.Dir("llama_adalora_train"), "rank_patterns.json")))!["steps"]!.AsArray();
        foreach (var step in schedule)
        {
            int k = step!["step"]!.GetValue<int>();
            var kept = step["kept_ranks"] as JsonObject;
            if (kept is null) { Assert.Null(patterns[k]); continue; }
            // Golden keys carry PEFT's in-memory adapter suffix (".default"); ours are saved without it.
            var want = kept.ToDictionary(kv => kv.Key.Replace(".default", ""), kv => kv.Value!.GetValue<int>());
            Assert.Equal(want.OrderBy(x => x.Key), patterns[k]!.OrderBy(x => x.Key));
        }
        // The saved adapter is cut to the kept ranks (layer 1 q_proj keeps none: zero-sized tensors).
        var saved = Peft.Training.IO.Safetensors.Load(Path.Combine(dir.Path, "adapter_model.safetensors"));
        Assert.Equal(new long[] { 0, 64 }, saved["base_model.model.model.layers.1.self_attn.q_proj.lora_A"].shape);
    }
}
