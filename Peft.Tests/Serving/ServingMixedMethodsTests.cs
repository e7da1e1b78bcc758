using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Serving;
using Peft.Training.Serving.Adapters;
using Peft.Training.Tuners;
using TorchSharp;

namespace Peft.Tests.Serving;

/// <summary>
/// IA³ and DoRA adapters share the running batch with LoRA adapters (on the same layers: q_proj, v_proj, down_proj) and
/// the base; prompt-tuning, P-tuning and prefix-tuning rows join it after a prefill with their virtual tokens. Each
/// such row gets PEFT's logits (golden, 1e-4) and, row by row, the logits (1e-4) and greedy tokens it gets alone.
/// </summary>
public class ServingMixedMethodsTests(ServingFixture fx) : IClassFixture<ServingFixture>
{
    private const string Ia3Case = "llama_ia3";
    private static readonly SamplingParams Greedy = new() { MaxTokens = 8, Temperature = 0, StopAtEos = false };

    private void EnsureAdapter(string golden = Ia3Case, string name = "ia")
    {
        if (!Directory.Exists(Path.Combine(fx.Root, name, "1"))) fx.CopyAdapter(GoldenData.Dir(golden), name, 1);
    }

    private static async Task<SequenceResult> Run(ServingEngine engine, string? adapter, int[] prompt, SamplingParams p)
    {
        var lease = adapter is null ? null : await engine.Adapters.AcquireAsync(adapter, CancellationToken.None);
        return await engine.Submit(prompt, p, lease).Completion.WaitAsync(TimeSpan.FromMinutes(2));
    }

    /// <summary>The golden batch's rows as unpadded prompts, with PEFT's logits at each row's last real token.</summary>
    private static List<(int[] Prompt, float[] Logits)> GoldenRows(string golden)
    {
        var e = GoldenData.Expected(golden);
        var rows = new List<(int[], float[])>();
        long virtualTokens = e["logits"].shape[1] - e["input_ids"].shape[1];   // prompt / P-tuning logits cover them too
        for (int i = 0; i < e["input_ids"].shape[0]; i++)
        {
            var mask = e["attention_mask"][i].data<long>().ToArray();
            if (mask.Any(m => m == 0) && Array.IndexOf(mask, 0L) < Array.LastIndexOf(mask, 1L)) continue;   // left padding: positions differ
            int len = mask.Count(m => m == 1);
            var ids = e["input_ids"][i].data<long>().Take(len).Select(x => (int)x).ToArray();
            rows.Add((ids, e["logits"][i, virtualTokens + len - 1].to(torch.ScalarType.Float32).data<float>().ToArray()));
        }
        return rows;
    }

    [Theory]
    [InlineData(Ia3Case, "ia")]
    [InlineData("llama_lora_dora", "dora")]
    [InlineData("llama_prompt_tuning", "pt")]
    [InlineData("llama_p_tuning", "ptune")]
    [InlineData("llama_prefix_tuning", "prefix")]
    [InlineData("llama_prefix_tuning_proj", "prefixproj")]
    public async Task RowsInAMixedBatchGetPeftsLogitsAndWhatTheyGetAlone(string goldenCase, string name)
    {
        EnsureAdapter(goldenCase, name);
        var golden = GoldenRows(goldenCase);
        Assert.NotEmpty(golden);
        var (engine, cache) = fx.Engine();
        using var _ = engine;
        using var __ = cache;

        (string? Adapter, int[] Prompt)[] requests =
        [
            (name, golden[0].Prompt),
            ("a", [1, 5, 9, 13, 17]),
            ("c", [1, 7, 7, 7, 7, 7, 30, 31, 32]),
            (null, [1, 100, 3, 64]),
            (name, [1, 2, 40, 41]),
            ("b", [1, 40, 41]),
        ];
        var alone = new List<SequenceResult>();
        foreach (var (adapter, prompt) in requests) alone.Add(await Run(engine, adapter, prompt, Greedy));
        Assert.Equal(1, engine.PeakBatch);
        // Alone, the row is PEFT's model (golden logits of its last prompt token).
        double goldenDiff = golden[0].Logits.Zip(alone[0].Logits![0], (x, y) => Math.Abs(x - y)).Max();
        Assert.True(goldenDiff <= 1e-4, $"{name} prefill logits differ from PEFT's by {goldenDiff:E2}");

        var leases = new List<AdapterLease?>();
        foreach (var (adapter, _) in requests) leases.Add(adapter is null ? null : await cache.AcquireAsync(adapter, default));
        var results = await Task.WhenAll(requests.Select((r, i) => engine.Submit(r.Prompt, Greedy, leases[i]).Completion));
        Assert.True(engine.PeakBatch >= 4, $"requests did not share a batch (peak {engine.PeakBatch})");
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(alone[i].Tokens.Select(t => t.TokenId), results[i].Tokens.Select(t => t.TokenId));
            for (int s = 0; s < alone[i].Logits!.Count; s++)
            {
                double diff = alone[i].Logits![s].Zip(results[i].Logits![s], (x, y) => Math.Abs(x - y)).Max();
                Assert.True(diff <= 1e-4, $"request {i} ({requests[i].Adapter ?? "base"}) step {s}: logits differ by {diff:E2}");
            }
        }
        // The adapter changes the answer (else the checks above prove nothing).
        var onBase = await Run(engine, null, golden[0].Prompt, Greedy);
        Assert.NotEqual(onBase.Logits![0], results[0].Logits![0]);

        // Greedy tokens equal PEFT's model (the engine's own generator over PeftModel.FromPretrained).
        var model = AutoModel.FromPretrained(GoldenData.Dir(ServingFixture.BaseCase));
        using var peft = PeftModel.FromPretrained(model, Path.Combine(fx.Root, name, "1"));
        model.eval();
        using var noGrad = torch.no_grad();
        var ids = golden[0].Prompt.Select(t => (long)t).ToList();
        for (int step = 0; step < Greedy.MaxTokens; step++)
        {
            using var scope = torch.NewDisposeScope();
            using var output = peft.Forward(new ForwardArgs { InputIds = torch.tensor(ids.ToArray()).view(1, ids.Count) });
            ids.Add(output.Logits[0, -1].argmax().item<long>());
        }
        Assert.Equal(ids.Skip(golden[0].Prompt.Length).Select(x => (int)x), results[0].Tokens.Select(t => t.TokenId));
    }

    [Fact]
    public async Task Ia3AdaptersUnloadAndCannotBeMergedPerRequest()
    {
        EnsureAdapter();
        var (engine, cache) = fx.Engine();
        using var _ = engine;
        using var __ = cache;
        var first = await Run(engine, "ia", [1, 2, 3], Greedy);
        Assert.True(await engine.UnloadAsync("ia@1"));
        Assert.Equal(first.Tokens.Select(t => t.TokenId), (await Run(engine, "ia", [1, 2, 3], Greedy)).Tokens.Select(t => t.TokenId));
        var lease = await cache.AcquireMergedAsync(new MergeSpec(["ia", "a"], [1.0, 1.0], "linear", null), default);
        var refused = await Assert.ThrowsAsync<Peft.Core.PeftUserException>(() => engine.Submit([1, 2], Greedy, lease).Completion);
        Assert.Contains("IA3", refused.Message);
    }
}
