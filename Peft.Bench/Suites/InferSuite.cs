using System.Diagnostics;
using System.Text.Json.Nodes;
using Peft.Training.Generation;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Bench.Suites;

/// <summary>
/// Inference throughput through the engine's batch API: the base model, one LoRA adapter unmerged, the same adapter
/// merged, and a batch whose 8 rows each use a different LoRA adapter (mixed batch, what multi-adapter serving does).
/// </summary>
public static class InferSuite
{
    private const int Adapters = 8;

    public static BenchTable Run(BenchOptions o)
    {
        string cfg = o.Configs?.FirstOrDefault() ?? (o.Quick ? "tiny10m" : "small50m");
        int batch = o.Batch ?? 8, seq = o.Seq ?? (o.Quick ? 32 : 128), newTokens = o.Quick ? 4 : 32, prompt = 16;
        var table = new BenchTable("infer", $"Inference ({cfg}; forward {batch}×{seq}; generate {batch} rows, {prompt}-token prompts, {newTokens} new tokens, greedy)",
            "mode", "forward tokens/s", "generate tokens/s");
        var model = AutoModel.FromConfig(BenchConfigs.Resolve(cfg));
        model.InitWeights(0);
        model.eval();
        using var peft = PeftModel.Create(model, Lora(), "a0", seed: 0);
        for (int i = 1; i < Adapters; i++) peft.AddAdapter($"a{i}", Lora());
        RandomizeB(peft);
        var gen = new Generator(1);
        using var ids = torch.randint(0, model.VocabSize, [batch, seq], generator: gen);
        using var promptIds = torch.randint(0, model.VocabSize, [batch, prompt], generator: gen);
        var mixedNames = Enumerable.Range(0, batch).Select(i => $"a{i % Adapters}").ToList();
        int reps = o.Quick ? 2 : 5;

        using (peft.DisableAdapters())
            table.Add(Row("base model", peft, ids, promptIds, null, newTokens, reps));
        peft.SetAdapter("a0");
        table.Add(Row("1 LoRA adapter, unmerged", peft, ids, promptIds, null, newTokens, reps));
        peft.MergeAdapter();
        table.Add(Row("1 LoRA adapter, merged", peft, ids, promptIds, null, newTokens, reps));
        peft.UnmergeAdapter();
        table.Add(Row($"{Adapters} LoRA adapters, one per row (mixed batch)", peft, ids, promptIds, mixedNames, newTokens, reps));
        table.Notes.Add("LoRA r=8, alpha 16 on q_proj,v_proj with non-zero weights; generate counts new tokens of all rows; median of the repetitions.");
        return table;
    }

    private static LoraConfig Lora() => new() { R = 8, LoraAlpha = 16, TargetModules = StringOrList.Of("q_proj", "v_proj") };

    private static void RandomizeB(PeftModel peft)
    {
        using var noGrad = torch.no_grad();
        foreach (var name in peft.Configs.Keys)
            foreach (var t in peft.AdapterTensors(name).Where(t => t.CheckpointKey.EndsWith("lora_B.weight", StringComparison.Ordinal)))
                t.Parameter.normal_(0, 0.02);
    }

    private static JsonObject Row(string mode, PeftModel peft, Tensor ids, Tensor promptIds, IReadOnlyList<string>? names, int newTokens, int reps)
    {
        var fwd = new List<double>();
        var genTimes = new List<double>();
        for (int r = 0; r < reps + 1; r++)
        {
            var sw = Stopwatch.StartNew();
            using (torch.no_grad())
            using (var scope = torch.NewDisposeScope())
                peft.Forward(new ForwardArgs { InputIds = ids }, names).Dispose();
            if (r > 0) fwd.Add(sw.Elapsed.TotalSeconds);
            sw.Restart();
            using (var result = TextGenerator.Generate(peft, promptIds, null,
                       new GenerationOptions { MaxNewTokens = newTokens, EosTokenIds = [], PadTokenId = 0, AdapterNames = names }))
            { }
            if (r > 0) genTimes.Add(sw.Elapsed.TotalSeconds);
        }
        return new JsonObject
        {
            ["mode"] = mode,
            ["forward tokens/s"] = Math.Round(ids.numel() / Stats.Median(fwd), 0),
            ["generate tokens/s"] = Math.Round(promptIds.shape[0] * newTokens / Stats.Median(genTimes), 1),
        };
    }
}
