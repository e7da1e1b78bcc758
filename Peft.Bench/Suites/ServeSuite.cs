using System.Diagnostics;
using System.Text.Json.Nodes;
using Peft.Training.Models;
using Peft.Training.Serving;
using Peft.Training.Serving.Adapters;
using Peft.Training.Tuners;
using TorchSharp;

namespace Peft.Bench.Suites;

/// <summary>
/// The multi-adapter server's engine (continuous batching, per-row LoRA): end-to-end generated tokens/s for the base,
/// one merged adapter, 1/8/32 distinct unmerged adapters in mixed batches and a naive one-adapter-at-a-time server;
/// hot-swap latency (alias moved to a never-loaded version → first token); adapter-cache hit rate under a Zipf
/// workload over 100 adapters; time to first token under load.
/// </summary>
public static class ServeSuite
{
    private const int AdapterCount = 100;
    private const int Rounds = 5;

    public static BenchTable Run(BenchOptions o)
    {
        var configs = o.Configs ?? (Directory.Exists("models/peft-demo") ? ["small50m", "models/peft-demo"] : ["small50m"]);
        int rows = o.Batch ?? 32, newTokens = o.Quick ? 8 : 32;
        var table = new BenchTable("serve", $"Serving engine ({rows} concurrent requests, 16-token prompts, {newTokens} new tokens each, greedy)",
            "model", "mode", "tokens/s", "vs base", "TTFT p50 ms", "TTFT p99 ms");
        foreach (var cfg in configs) RunConfig(cfg, o, rows, newTokens, table);
        table.Notes.Add("tokens/s = generated tokens of all requests / wall time from the first submission to the last completion (prefill included); the median of 5 rounds that interleave the modes (1 with --quick), TTFT percentiles over all rounds. LoRA r=8, alpha 16 on q_proj,v_proj with non-zero B; one engine loop thread per server.");
        table.Notes.Add("naive = the same requests over the same distinct adapters served one adapter at a time (one request in flight), as a server that swaps adapters between batches.");
        table.Notes.Add("hot swap = aliases.json moved to a version never loaded before, to the first token of a request naming the alias, with 8 sequences already decoding; each move at a random point of the decode loop (0–100 ms pause); 100 swaps, p99 = the 99th of them. The already-loaded row is the same request on a loaded adapter right after each swap: the first-token cost of this load without a swap. The idle-server row: 25 swaps (4 with --quick) before the 8 sequences start, what the swap itself costs.");
        table.Notes.Add("Zipf (s=1.1) over 100 adapters, device budget 16 adapters, host budget 32: hits / (hits + misses) over the requests.");
        return table;
    }

    private static PretrainedModel Build(string cfg)
    {
        if (Directory.Exists(cfg) && File.Exists(Path.Combine(cfg, "config.json")) && Directory.EnumerateFiles(cfg, "*.safetensors").Any())
            return AutoModel.FromPretrained(cfg);
        var model = AutoModel.FromConfig(BenchConfigs.Resolve(cfg));
        model.InitWeights(0);
        return model;
    }

    private static void WriteAdapters(string cfg, string root)
    {
        using var model = Build(cfg);
        using var peft = PeftModel.Create(model, Lora(), "n0", seed: 0);
        using var noGrad = torch.no_grad();
        for (int i = 0; i < AdapterCount; i++)
        {
            string name = $"n{i}";
            if (i > 0) peft.AddAdapter(name, Lora());
            foreach (var t in peft.AdapterTensors(name).Where(t => t.CheckpointKey.EndsWith("lora_B.weight", StringComparison.Ordinal)))
                t.Parameter.normal_(0, 0.02);
            SaveAsVersion1(peft, root, name);
            if (i > 0) peft.DeleteAdapter(name);
        }
    }

    /// <summary>Saves adapter <paramref name="name"/> as <c>root/name/1/</c> (the folder source's version layout).</summary>
    private static void SaveAsVersion1(PeftModel peft, string root, string name)
    {
        string dir = Path.Combine(root, name, "1");
        peft.SavePretrained(root, [name]);
        Directory.CreateDirectory(dir);
        foreach (var f in new[] { PeftModel.ConfigFileName, PeftModel.WeightsFileName })
            File.Move(Path.Combine(root, name, f), Path.Combine(dir, f));
    }

    /// <summary>16 IA³ adapters i0..i15 (PEFT's llama defaults k, v, down_proj; vectors ~ N(1, 0.02)).</summary>
    private static void WriteIa3Adapters(string cfg, string root)
    {
        using var model = Build(cfg);
        using var peft = PeftModel.Create(model, new Peft.Core.Configs.Ia3Config(), "i0", seed: 0);
        using var noGrad = torch.no_grad();
        for (int i = 0; i < 16; i++)
        {
            string name = $"i{i}";
            if (i > 0) peft.AddAdapter(name, new Peft.Core.Configs.Ia3Config());
            foreach (var t in peft.AdapterTensors(name)) t.Parameter.normal_(1, 0.02);
            SaveAsVersion1(peft, root, name);
            if (i > 0) peft.DeleteAdapter(name);
        }
    }

    private static Peft.Core.Configs.LoraConfig Lora() => new() { R = 8, LoraAlpha = 16, TargetModules = StringOrList.Of("q_proj", "v_proj") };

    private static void RunConfig(string cfg, BenchOptions o, int rows, int newTokens, BenchTable table)
    {
        string label = Path.GetFileName(cfg.TrimEnd('/'));
        string root = Path.Combine(Path.GetTempPath(), "peft-bench-serve-" + Guid.NewGuid().ToString("N"));
        try
        {
            WriteAdapters(cfg, root);
            WriteIa3Adapters(cfg, root);
            var rng = new Random(3);
            int vocab;
            using (var m = Build(cfg)) vocab = m.VocabSize;
            var prompts = Enumerable.Range(0, rows).Select(_ => Enumerable.Range(0, 16).Select(_ => rng.Next(2, vocab)).ToArray()).ToList();
            var p = new SamplingParams { MaxTokens = newTokens, Temperature = 0, StopAtEos = false };

            double baseRate = 0;
            void Add(string mode, (double Rate, List<double> Ttft) r, bool ttft = true)
            {
                if (mode == "base") baseRate = r.Rate;
                table.Add(new JsonObject
                {
                    ["model"] = label,
                    ["mode"] = mode,
                    ["tokens/s"] = Math.Round(r.Rate, 1),
                    ["vs base"] = Math.Round(r.Rate / baseRate, 2),
                    ["TTFT p50 ms"] = ttft ? Math.Round(Percentile(r.Ttft, 0.5) * 1000, 0) : null,
                    ["TTFT p99 ms"] = ttft ? Math.Round(Percentile(r.Ttft, 0.99) * 1000, 0) : null,
                });
            }

            var merged = Build(cfg);
            using (var peft = PeftModel.FromPretrained(merged, Path.Combine(root, "n0", "1")))
                merged = peft.MergeAndUnload();   // detaches: disposing peft leaves the merged model
            using var baseServer = Server(Build(cfg), root);
            using var mergedServer = Server(merged, root);
            using var s = Server(Build(cfg), root);
            // Half the rows IA³ (16 distinct) and half LoRA (16 distinct): what IA³ rows cost when they share the batch.
            Func<int, string> mixedKinds = i => i % 2 == 0 ? $"n{i / 2 % 16}" : $"i{i / 2 % 16}";
            var modes = new List<(string Mode, ServingEngine Server, Func<int, string?> Adapter)>
            {
                ("base", baseServer, _ => null),
                ("1 adapter, merged", mergedServer, _ => null),
                ("1 distinct adapters, mixed batch", s, i => "n0"),
                ("8 distinct adapters, mixed batch", s, i => $"n{i % 8}"),
                ("32 distinct adapters, mixed batch", s, i => $"n{i % 32}"),
                ("32 distinct adapters (16 LoRA + 16 IA3), mixed batch", s, mixedKinds),
            };
            foreach (var m in modes) Measure(m.Server, prompts, m.Adapter, p with { MaxTokens = 4 });   // warm-up, adapters loaded
            // Rounds interleave the modes, so a slow spell of a shared machine hits every mode alike; each row is the
            // median round by tokens/s, TTFT percentiles over all rounds' requests.
            var runs = modes.ToDictionary(m => m.Mode, _ => new List<(double Rate, List<double> Ttft)>());
            for (int round = 0; round < (o.Quick ? 1 : Rounds); round++)
                foreach (var m in modes) runs[m.Mode].Add(Measure(m.Server, prompts, m.Adapter, p));
            foreach (var m in modes)
            {
                var rs = runs[m.Mode].OrderBy(r => r.Rate).ToList();
                Add(m.Mode, (rs[rs.Count / 2].Rate, rs.SelectMany(r => r.Ttft).ToList()));
            }
            Add("32 distinct adapters, naive (one at a time)", Naive(s, prompts, i => $"n{i % 32}", p), ttft: false);
            var (swap, loaded, idle) = HotSwap(s, root, prompts, o.Quick ? 8 : 100);
            AddLatency(table, label, "hot swap latency, idle server (ms), p50 / p99", idle);
            AddLatency(table, label, "hot swap latency (ms), p50 / p99", swap);
            AddLatency(table, label, "first token, adapter already loaded, same load (ms), p50 / p99", loaded);
            var hit = Zipf(cfg, root, prompts, o.Quick ? 100 : 300);
            table.Add(new JsonObject { ["model"] = label, ["mode"] = $"Zipf cache hit rate over {AdapterCount} adapters", ["tokens/s"] = Math.Round(hit, 3), ["vs base"] = null, ["TTFT p50 ms"] = null, ["TTFT p99 ms"] = null });
        }
        finally
        {
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    private static ServingEngine Server(PretrainedModel model, string root, AdapterCacheOptions? cache = null) =>
        new(model, new AdapterCache(new FolderAdapterSource(root), cache ?? new AdapterCacheOptions()), new ServingEngineOptions { MaxBatchSize = 64 });

    private static (double Rate, List<double> Ttft) Measure(ServingEngine s, List<int[]> prompts, Func<int, string?> adapter, SamplingParams p)
    {
        // Start each measurement from a collected heap: the previous mode's garbage (tensor wrappers with finalizers)
        // would otherwise be collected during this one and bill it for the other's work.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var leases = prompts.Select((_, i) => adapter(i) is { } a ? s.Adapters.AcquireAsync(a, default).GetAwaiter().GetResult() : null).ToList();
        var sw = Stopwatch.StartNew();
        var reqs = prompts.Select((pr, i) => s.Submit(pr, p, leases[i])).ToList();
        var results = Task.WhenAll(reqs.Select(r => r.Completion)).GetAwaiter().GetResult();
        double secs = sw.Elapsed.TotalSeconds;
        return (results.Sum(r => r.Tokens.Count) / secs, results.Select(r => r.TimeToFirstToken.TotalSeconds).ToList());
    }

    private static (double Rate, List<double> Ttft) Naive(ServingEngine s, List<int[]> prompts, Func<int, string?> adapter, SamplingParams p)
    {
        var sw = Stopwatch.StartNew();
        int tokens = 0;
        for (int i = 0; i < prompts.Count; i++)
        {
            var lease = adapter(i) is { } a ? s.Adapters.AcquireAsync(a, default).GetAwaiter().GetResult() : null;
            tokens += s.Submit(prompts[i], p, lease).Completion.GetAwaiter().GetResult().Tokens.Count;
        }
        return (tokens / sw.Elapsed.TotalSeconds, []);
    }

    /// <summary>
    /// Versions 1..n of adapter "swap" (copies of other adapters); the alias moves to each in turn, with 8 sequences
    /// already decoding (their own admission is not part of any swap). Each move comes at a random point of the decode
    /// loop (a 0–100 ms pause first), as an alias move does in use; timed from the move to the first token of a request
    /// naming the alias. After each swap the same request on an adapter that is already loaded gives the contrast:
    /// what a first token costs under this load without any swap. Before the load, n/4 swaps to further versions on
    /// the idle server give what the swap itself costs.
    /// </summary>
    private static (List<double> Swap, List<double> Loaded, List<double> Idle) HotSwap(ServingEngine s, string root, List<int[]> prompts, int n)
    {
        int idleSwaps = Math.Max(4, n / 4);
        for (int v = 1; v <= n + idleSwaps; v++)
        {
            string dir = Path.Combine(root, "swap", v.ToString());
            Directory.CreateDirectory(dir);
            foreach (var f in new[] { PeftModel.ConfigFileName, PeftModel.WeightsFileName })
                File.Copy(Path.Combine(root, $"n{(50 + v) % AdapterCount}", "1", f), Path.Combine(dir, f));   // a new key: loaded from disk
        }
        var rng = new Random(11);
        string aliases = Path.Combine(root, "swap", FolderAdapterSource.AliasesFileName);
        double FirstToken(string adapter, Action? before = null)
        {
            Thread.Sleep(rng.Next(0, 100));
            var sw = Stopwatch.StartNew();
            before?.Invoke();
            var lease = s.Adapters.AcquireAsync(adapter, default).GetAwaiter().GetResult();
            var r = s.Submit(prompts[0], new SamplingParams { MaxTokens = 1, Temperature = 0 }, lease);
            r.Tokens.ReadAsync().AsTask().GetAwaiter().GetResult();
            double secs = sw.Elapsed.TotalSeconds;
            r.Completion.GetAwaiter().GetResult();
            return secs;
        }
        double SwapTo(int v) => FirstToken("swap@prod", () =>
        {
            File.WriteAllText(aliases + ".tmp", $"{{\"prod\": {v}}}");
            File.Move(aliases + ".tmp", aliases, true);
        });
        var idle = Enumerable.Range(n + 1, idleSwaps).Select(SwapTo).ToList();
        using var stop = new CancellationTokenSource();
        var background = prompts.Take(8).Select((pr, i) => s.Submit(pr, new SamplingParams { MaxTokens = 2000, Temperature = 0, StopAtEos = false },
            s.Adapters.AcquireAsync($"n{i}", default).GetAwaiter().GetResult(), stop.Token)).ToList();
        var wait = Stopwatch.StartNew();
        while (s.Running < background.Count && wait.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(1);
        var swaps = new List<double>();
        var loaded = new List<double>();
        for (int v = 1; v <= n; v++)
        {
            swaps.Add(SwapTo(v));
            loaded.Add(FirstToken("n9"));
        }
        stop.Cancel();
        Task.WhenAll(background.Select(b => b.Completion)).GetAwaiter().GetResult();
        return (swaps, loaded, idle);
    }

    private static double Zipf(string cfg, string root, List<int[]> prompts, int requests)
    {
        long one;
        using (var probe = Server(Build(cfg), root))
        using (var l = probe.Adapters.AcquireAsync("n0", default).GetAwaiter().GetResult())
            one = l.Entry.Bytes;
        using var s = Server(Build(cfg), root, new AdapterCacheOptions { DeviceBudgetBytes = one * 16, HostBudgetBytes = one * 32 });
        var weights = Enumerable.Range(1, AdapterCount).Select(k => 1 / Math.Pow(k, 1.1)).ToArray();
        double total = weights.Sum();
        var rng = new Random(5);
        int Draw()
        {
            double u = rng.NextDouble() * total;
            for (int k = 0; k < weights.Length; k++) if ((u -= weights[k]) <= 0) return k;
            return weights.Length - 1;
        }
        var p = new SamplingParams { MaxTokens = 2, Temperature = 0, StopAtEos = false };
        for (int done = 0; done < requests; done += 16)
        {
            var batch = Enumerable.Range(0, Math.Min(16, requests - done))
                .Select(i => s.Submit(prompts[i % prompts.Count], p, s.Adapters.AcquireAsync($"n{Draw()}", default).GetAwaiter().GetResult())).ToList();
            Task.WhenAll(batch.Select(b => b.Completion)).GetAwaiter().GetResult();
        }
        return (double)s.Adapters.Hits / (s.Adapters.Hits + s.Adapters.Misses);
    }

    private static void AddLatency(BenchTable table, string label, string mode, List<double> secs) =>
        table.Add(new JsonObject { ["model"] = label, ["mode"] = mode, ["tokens/s"] = null, ["vs base"] = null,
            ["TTFT p50 ms"] = Math.Round(Percentile(secs, 0.5) * 1000, 0), ["TTFT p99 ms"] = Math.Round(Percentile(secs, 0.99) * 1000, 0) });

    private static double Percentile(List<double> xs, double q)
    {
        if (xs.Count == 0) return double.NaN;
        var s = xs.Order().ToArray();
        return s[Math.Min(s.Length - 1, (int)Math.Ceiling(q * s.Length) - 1)];
    }
}
