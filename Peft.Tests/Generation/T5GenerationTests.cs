using Peft.Tests.Support;
using Peft.Training.Generation;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Generation;

/// <summary>
/// Seq2seq generation on the golden tiny T5 / mT5 (no transformers generate() reference for them): greedy with the KV
/// cache equals a no-cache loop of full forward passes, beams, sampling, eos/pad, mixed-batch adapters.
/// </summary>
public class T5GenerationTests
{
    public static TheoryData<string, string> Models => new() { { "t5", "base" }, { "t5", "lora" }, { "mt5", "base" }, { "mt5", "lora" } };

    private static (Tensor Ids, Tensor Mask) Inputs()
    {
        var e = GoldenData.Expected("t5_base");
        return (e["input_ids"], e["attention_mask"]);   // row 1 has two padded positions
    }

    /// <summary>Greedy without any cache: every step re-runs encoder and decoder over the whole decoder sequence.</summary>
    private static (long[,] Sequences, Tensor Scores) NoCacheGreedy(ICausalLmRunner runner, Tensor ids, Tensor mask, int steps, long start,
        IReadOnlyList<string>? names = null)
    {
        using var noGrad = torch.no_grad();
        var decoded = torch.full(ids.shape[0], 1, start, ScalarType.Int64);
        var scores = new List<Tensor>();
        for (int i = 0; i < steps; i++)
        {
            using var output = runner.Forward(new ForwardArgs { InputIds = ids, AttentionMask = mask, DecoderInputIds = decoded }, names);
            var last = output.Logits.select(1, -1).clone();
            scores.Add(last);
            decoded = torch.cat([decoded, last.argmax(-1).unsqueeze(1)], 1);
        }
        return (GenerationFixtures.ToArray2D(decoded), torch.stack(scores, 1));
    }

    /// <summary>Teacher-forced log-probability of each decoder sequence after its start token.</summary>
    internal static double[] LogProbs(ICausalLmRunner runner, Tensor ids, Tensor mask, Tensor sequences)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        long len = sequences.shape[1];
        using var output = runner.Forward(new ForwardArgs { InputIds = ids, AttentionMask = mask, DecoderInputIds = sequences.narrow(1, 0, len - 1) }, null);
        var picked = output.Logits.log_softmax(-1).gather(-1, sequences.narrow(1, 1, len - 1).unsqueeze(-1)).squeeze(-1);
        return picked.to(ScalarType.Float64).sum(-1).data<double>().ToArray();
    }

    private static GenerationOptions NoEos => new() { MaxNewTokens = 8, EosTokenIds = [], PadTokenId = 0 };

    [Theory, MemberData(nameof(Models))]
    public void GreedyWithCacheEqualsNoCacheLoop(string family, string variant)
    {
        using var scope = torch.NewDisposeScope();
        using var loaded = GenerationFixtures.Load(family, variant);
        var (ids, mask) = Inputs();
        using var result = TextGenerator.Generate(loaded.Runner, ids, mask, NoEos with { OutputScores = true });
        var (sequences, scores) = NoCacheGreedy(loaded.Runner, ids, mask, 8, 0);
        Assert.Equal(sequences, GenerationFixtures.ToArray2D(result.Sequences));
        Assert.Equal(1, result.PromptLength);
        Assert.Equal(new[] { 8, 8 }, result.NewTokenCounts);
        // Scores are the raw logits (no warper); mT5 logits reach ~26, hence the looser bound there.
        GoldenData.AssertClose(scores, result.StackedScores(), family == "mt5" ? 5e-4 : 1e-4, "step logits");
    }

    [Theory, MemberData(nameof(Models))]
    public void OneBeamEqualsGreedy(string family, string variant)
    {
        using var scope = torch.NewDisposeScope();
        using var loaded = GenerationFixtures.Load(family, variant);
        var (ids, mask) = Inputs();
        using var greedy = TextGenerator.Generate(loaded.Runner, ids, mask, NoEos);
        // Run the beam algorithm itself (Generate sends num_beams = 1 to greedy).
        var settings = GenerationSettings.Resolve(NoEos with { NumBeams = 1 }, GenerationConfig.ForModel(loaded.Runner.Model), ids.shape[0]);
        using var noGrad = torch.no_grad();
        using var beam = BeamSearch.Run(loaded.Runner, ids, mask, settings, default);
        Assert.Equal(GenerationFixtures.ToArray2D(greedy.Sequences), GenerationFixtures.ToArray2D(beam.Sequences));
    }

    [Theory, MemberData(nameof(Models))]
    public void BeamsScoreAtLeastAsWellAsGreedy(string family, string variant)
    {
        using var scope = torch.NewDisposeScope();
        using var loaded = GenerationFixtures.Load(family, variant);
        var (ids, mask) = Inputs();
        using var beam = TextGenerator.Generate(loaded.Runner, ids, mask, NoEos with { NumBeams = 4, OutputScores = true });
        using var greedy = TextGenerator.Generate(loaded.Runner, ids, mask, NoEos);
        Assert.Equal(new long[] { 2, 9 }, beam.Sequences.shape);
        Assert.Equal(new long[] { 2 * 4, 128 }, beam.Scores![0].shape);
        Assert.All(GenerationFixtures.ToArray2D(beam.Sequences).Cast<long>().Where((_, i) => i % 9 == 0), t => Assert.Equal(0, t));
        var beamLp = LogProbs(loaded.Runner, ids, mask, beam.Sequences);
        var greedyLp = LogProbs(loaded.Runner, ids, mask, greedy.Sequences);
        for (int r = 0; r < 2; r++)
        {
            Assert.True(beamLp[r] >= greedyLp[r] - 1e-4, $"row {r}: beam log-prob {beamLp[r]:F5} < greedy {greedyLp[r]:F5}");
            Assert.Equal(beamLp[r] / 8, beam.SequenceScores![r], 3);   // length_penalty 1, 8 generated tokens
        }
    }

    [Fact]
    public void SeededSamplingIsReproducibleAndTopK1IsGreedy()
    {
        using var scope = torch.NewDisposeScope();
        using var loaded = GenerationFixtures.Load("t5", "lora");
        var (ids, mask) = Inputs();
        var sampling = NoEos with { DoSample = true, Seed = 1234, TopK = 0 };
        using var a = TextGenerator.Generate(loaded.Runner, ids, mask, sampling);
        using var b = TextGenerator.Generate(loaded.Runner, ids, mask, sampling);
        using var c = TextGenerator.Generate(loaded.Runner, ids, mask, sampling with { Seed = 99 });
        Assert.Equal(GenerationFixtures.ToArray2D(a.Sequences), GenerationFixtures.ToArray2D(b.Sequences));
        Assert.NotEqual(GenerationFixtures.ToArray2D(a.Sequences), GenerationFixtures.ToArray2D(c.Sequences));
        using var topK1 = TextGenerator.Generate(loaded.Runner, ids, mask, sampling with { TopK = 1, Temperature = 0.7 });
        using var greedy = TextGenerator.Generate(loaded.Runner, ids, mask, NoEos);
        Assert.Equal(GenerationFixtures.ToArray2D(greedy.Sequences), GenerationFixtures.ToArray2D(topK1.Sequences));
    }

    [Fact]
    public void EosFinishesRowsAndPadsThem()
    {
        using var scope = torch.NewDisposeScope();
        using var loaded = GenerationFixtures.Load("t5", "base");
        var (ids, mask) = Inputs();
        var (full, _) = NoCacheGreedy(loaded.Runner, ids, mask, 8, 0);
        long eos = full[0, 3];   // row 0's third generated token
        using var r = TextGenerator.Generate(loaded.Runner, ids, mask, NoEos with { EosTokenIds = [(int)eos], PadTokenId = 0 });
        for (int row = 0; row < 2; row++)
        {
            var expected = Enumerable.Range(1, 8).Select(j => full[row, j]).ToList();
            int stop = expected.IndexOf(eos);
            int count = stop < 0 ? 8 : stop + 1;
            Assert.Equal(count, r.NewTokenCounts[row]);
            Assert.Equal(expected.Take(count), r.NewTokens(row));
            Assert.All(GenerationFixtures.Row(r.Sequences, row)[(1 + count)..], t => Assert.Equal(0, t));
        }
        Assert.True(r.NewTokenCounts[0] <= 3);
    }

    [Fact]
    public void DefaultsComeFromTheGenerationConfig()
    {
        using var scope = torch.NewDisposeScope();
        using var model = AutoModel.FromPretrained(GoldenData.Dir("t5_base"));
        model.eval();
        var (ids, mask) = Inputs();
        // generation_config.json: decoder_start_token_id 0, eos 1, pad 0; 20 new tokens at most.
        using var r = TextGenerator.Generate(model, ids, mask);
        Assert.All(GenerationFixtures.ToArray2D(r.Sequences.narrow(1, 0, 1)).Cast<long>(), t => Assert.Equal(0, t));
        Assert.True(r.Sequences.shape[1] <= 21);
        // Another start token is honoured (and changes what follows).
        using var other = TextGenerator.Generate(model, ids, mask, NoEos with { DecoderStartTokenId = 5 });
        var (expected, _) = NoCacheGreedy(new ModelRunner(model), ids, mask, 8, 5);
        Assert.Equal(expected, GenerationFixtures.ToArray2D(other.Sequences));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void MixedBatchAdapterNamesPerRow(int beams)
    {
        using var scope = torch.NewDisposeScope();
        var model = AutoModel.FromPretrained(GoldenData.Dir("t5_base"));
        model.eval();
        using var peft = PeftModel.FromPretrained(model, GoldenData.Dir("t5_lora"), "a");
        peft.LoadAdapter(GoldenData.Dir("t5_lora_rslora"), "b");
        var (ids, mask) = Inputs();
        var runner = new RecordingRunner(new PeftModelRunner(peft));
        var options = NoEos with { NumBeams = beams };
        using var mixed = TextGenerator.Generate(runner, ids, mask, options with { AdapterNames = ["a", "b"] });
        // The encoder pass keeps one name per input row; decoder steps repeat each name per beam (PEFT's behaviour).
        Assert.Equal(new[] { "a", "b" }, runner.Calls[0]);
        Assert.All(runner.Calls.Skip(1), names => Assert.Equal(new[] { "a", "b" }.SelectMany(n => Enumerable.Repeat(n, beams)), names));
        foreach (var (name, row) in new[] { ("a", 0), ("b", 1) })
        {
            peft.SetAdapter(name);
            using var single = TextGenerator.Generate(peft, ids, mask, options);
            Assert.Equal(GenerationFixtures.Row(single.Sequences, row), GenerationFixtures.Row(mixed.Sequences, row));
        }
        using var withBase = TextGenerator.Generate(peft, ids, mask, options with { AdapterNames = ["__base__", "__base__"] });
        using (peft.DisableAdapters())
        using (var plain = TextGenerator.Generate(peft, ids, mask, options))
            Assert.Equal(GenerationFixtures.ToArray2D(plain.Sequences), GenerationFixtures.ToArray2D(withBase.Sequences));
    }

    /// <summary>Records the adapter names of every forward pass.</summary>
    private sealed class RecordingRunner(ICausalLmRunner inner) : ICausalLmRunner
    {
        public List<string[]?> Calls { get; } = [];
        public PretrainedModel Model => inner.Model;

        public ModelOutput Forward(ForwardArgs args, IReadOnlyList<string>? rowAdapterNames)
        {
            Calls.Add(rowAdapterNames?.ToArray());
            return inner.Forward(args, rowAdapterNames);
        }
    }
}
