using System.Text.Json.Nodes;
using Peft.Tests.Support;
using Peft.Training.Data;
using Peft.Training.Generation;
using Peft.Training.Models;
using Peft.Training.Training;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Models;

/// <summary>
/// Each family's configured dropout (config.json keys as transformers reads them) applies in training mode only, draws
/// from the model's <see cref="PretrainedModel.Dropout"/> generator when one is set (reproducible runs), is replayed by
/// gradient checkpointing and is off in generation. Placement on the residual branches is checked exactly with rate 1,
/// which leaves only the embedding path of GPT-2, OPT and BLOOM.
/// </summary>
public class ModelDropoutTests
{
    public static TheoryData<string, string> Rates => new()
    {
        { "gpt2", "embd_pdrop" }, { "gpt2", "attn_pdrop" }, { "gpt2", "resid_pdrop" },
        { "opt", "dropout" }, { "opt", "attention_dropout" },
        { "bloom", "hidden_dropout" }, { "bloom", "attention_dropout" },
        { "llama", "attention_dropout" },
        { "t5", "dropout_rate" },
        { "bert", "hidden_dropout_prob" }, { "bert", "attention_probs_dropout_prob" },
    };

    /// <summary>The golden <c>{family}_base</c> with every dropout rate 0 except <paramref name="rates"/>.</summary>
    private static PretrainedModel Load(TempDir dir, string family, params (string Key, double Rate)[] rates)
    {
        string folder = GoldenData.ZeroDropoutCopy($"{family}_base", dir.Sub(Guid.NewGuid().ToString("N")));
        string path = Path.Combine(folder, "config.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        foreach (var (key, rate) in rates) json[key] = rate;
        File.WriteAllText(path, json.ToJsonString());
        return AutoModel.FromPretrained(folder);
    }

    private static ForwardArgs Inputs(PretrainedModel model)
    {
        var ids = torch.tensor(new long[] { 5, 17, 42, 99, 3, 64, 7, 21, 88, 12, 30, 45 }, [2, 6]);
        return new ForwardArgs { InputIds = ids, DecoderInputIds = model.IsEncoderDecoder ? ids.narrow(1, 0, 4) : null };
    }

    private static Tensor Logits(PretrainedModel model, bool training, ulong? seed = null)
    {
        if (training) model.train(); else model.eval();
        model.Dropout.Generator = seed is ulong s ? new Generator(s) : null;
        using var noGrad = torch.no_grad();
        using var output = model.Forward(Inputs(model));
        return output.Logits.clone();
    }

    [Theory, MemberData(nameof(Rates))]
    public void EachConfiguredRateDropsOutInTrainingOnly(string family, string key)
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        using var none = Load(dir, family);
        using var some = Load(dir, family, (key, 0.5));
        var reference = Logits(none, training: false);
        // Rates of zero: training mode computes exactly what eval mode does.
        GoldenData.AssertClose(reference, Logits(none, training: true, seed: 1), 0, "all rates 0, training");
        // The rate is read and used: off in eval mode, on in training mode.
        GoldenData.AssertClose(reference, Logits(some, training: false), 0, $"{key} 0.5, eval");
        var first = Logits(some, training: true, seed: 1);
        Assert.True(GoldenData.MaxAbsDiff(reference, first) > 1e-3, $"{key} 0.5 had no effect in training mode");
        // Masks come from the model's generator: same seed, same masks; another seed, other masks.
        GoldenData.AssertClose(first, Logits(some, training: true, seed: 1), 0, "same generator seed");
        Assert.True(GoldenData.MaxAbsDiff(first, Logits(some, training: true, seed: 2)) > 1e-4, "another seed gave the same masks");
    }

    [Theory]
    [InlineData("gpt2", "resid_pdrop")]
    [InlineData("opt", "dropout")]
    [InlineData("opt", "layerdrop")]
    [InlineData("bloom", "hidden_dropout")]
    public void ResidualDropoutOfOneLeavesOnlyTheEmbeddingPath(string family, string key)
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        using var model = Load(dir, family, (key, 1.0));
        var p = model.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        var ids = Inputs(model).InputIds!;
        long s = ids.shape[1];
        var positions = torch.arange(s);
        Tensor Rows(string table, Tensor index) => p[table].index_select(0, index.flatten()).view([.. index.shape, -1]);
        Tensor Norm(Tensor x, string prefix) => nn.functional.layer_norm(x, [x.shape[^1]], p[prefix + ".weight"], p[prefix + ".bias"], 1e-5);
        // Every attention and MLP branch is dropped entirely (OPT's layerdrop 1 skips every layer): what is left is the
        // embedding path through the final norms.
        var hidden = family switch
        {
            "gpt2" => Norm(Rows("transformer.wte.weight", ids) + Rows("transformer.wpe.weight", positions), "transformer.ln_f"),
            "opt" => Norm(Rows("model.decoder.embed_tokens.weight", ids) + Rows("model.decoder.embed_positions.weight", positions + 2), "model.decoder.final_layer_norm"),
            _ => Norm(Norm(Rows("transformer.word_embeddings.weight", ids), "transformer.word_embeddings_layernorm"), "transformer.ln_f"),
        };
        var embedding = family switch { "gpt2" => "transformer.wte.weight", "opt" => "model.decoder.embed_tokens.weight", _ => "transformer.word_embeddings.weight" };
        var expected = hidden.matmul(p[embedding].t());
        GoldenData.AssertClose(expected, Logits(model, training: true, seed: 3), 1e-4, $"{family} {key}=1");
        Assert.True(GoldenData.MaxAbsDiff(expected, Logits(model, training: false)) > 1e-2, "eval mode must keep the branches");
    }

    [Fact]
    public void T5DropoutOfOneZeroesEveryStack()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        using var model = Load(dir, "t5", ("dropout_rate", 1.0));
        // Embeddings, every residual branch and the final norm's output are dropped: the decoder output is zero.
        Assert.Equal(0.0, Logits(model, training: true, seed: 4).abs().max().item<float>());
        Assert.True(Logits(model, training: false).abs().max().item<float>() > 0.1);
    }

    private static TrainingDataset PaddedBatch()
    {
        var e = GoldenData.Expected("gpt2_lora_train_padded");
        var rows = Enumerable.Range(0, 4).Select(i => new Example(
            e["input_ids"][i].data<long>().ToArray(), e["labels"][i].data<long>().ToArray(), e["attention_mask"][i].data<long>().ToArray())).ToList();
        return new TrainingDataset(rows, new DatasetStats());
    }

    /// <summary>Three LoRA steps on GPT-2 with every dropout at 0.1 (or 0), masks drawn from the run's generator of <paramref name="seed"/>.</summary>
    private static (IReadOnlyList<double> Losses, Dictionary<string, Tensor> Weights) Train(TempDir dir, ulong seed, double rate)
    {
        using var model = Load(dir, "gpt2", ("embd_pdrop", rate), ("attn_pdrop", rate), ("resid_pdrop", rate));
        using var peft = PeftModel.FromPretrained(model, GoldenData.Dir("gpt2_lora_train_padded"), isTrainable: true);
        var trainable = TrainableModel.ForAdapter(peft);
        var options = new TrainingOptions
        {
            OutputDir = dir.Sub(Guid.NewGuid().ToString("N")), MaxSteps = 3, BatchSize = 4, LearningRate = 1e-2, MaxGradNorm = 0,
            Scheduler = SchedulerKind.Constant, Shuffle = false, Seed = (int)seed,
        };
        using var trainer = new Trainer(trainable, options, PaddedBatch());
        var result = trainer.Train();
        return (result.StepLosses, trainable.Parameters().ToDictionary(p => p.Name, p => p.Parameter.detach().clone()));
    }

    [Fact]
    public void SeededTrainingWithDropoutIsReproducible()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        var first = Train(dir, 7, 0.1);
        var again = Train(dir, 7, 0.1);
        Assert.Equal(first.Losses, again.Losses);
        foreach (var (key, w) in first.Weights) GoldenData.AssertClose(w, again.Weights[key], 0, key);
        var other = Train(dir, 8, 0.1);
        Assert.NotEqual(first.Losses, other.Losses);
        // With the rates at zero the run is the golden reference's (gpt2_lora_train_padded, no weight decay here).
        var plain = Train(dir, 7, 0.0);
        Assert.Equal(GoldenData.Expected("gpt2_lora_train_padded")["step_losses"].data<float>()[0], plain.Losses[0], 4);
        Assert.True(Math.Abs(first.Losses[0] - plain.Losses[0]) > 1e-3, "dropout 0.1 did not change the first loss");
    }

    [Fact]
    public void GradientCheckpointingReplaysTheGeneratorsMasks()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        using var model = Load(dir, "gpt2", ("embd_pdrop", 0.2), ("attn_pdrop", 0.2), ("resid_pdrop", 0.2));
        using var peft = PeftModel.FromPretrained(model, GoldenData.Dir("gpt2_lora_train_padded"), isTrainable: true);
        var e = GoldenData.Expected("gpt2_lora_train_padded");
        Dictionary<string, Tensor> Grads(bool checkpointing)
        {
            model.train();
            model.GradientCheckpointing = checkpointing;
            model.Dropout.Generator = new Generator(5);
            using (var output = peft.Forward(new ForwardArgs { InputIds = e["input_ids"], AttentionMask = e["attention_mask"] }))
                Losses.CausalLm(output.Logits, e["labels"]).Mean().backward();
            var grads = peft.AdapterTensors(peft.ActiveAdapter).ToDictionary(t => t.CheckpointKey, t => t.Parameter.grad!.clone());
            foreach (var t in peft.AdapterTensors(peft.ActiveAdapter)) t.Parameter.grad = null;
            return grads;
        }
        var plain = Grads(false);
        var recomputed = Grads(true);
        Assert.Equal(4, plain.Count);
        foreach (var (key, g) in plain) GoldenData.AssertClose(g, recomputed[key], 1e-6, "checkpointed " + key);
    }

    [Fact]
    public void GenerationRunsWithoutDropoutAndKeepsTheTrainingMode()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        using var model = Load(dir, "gpt2", ("embd_pdrop", 0.5), ("attn_pdrop", 0.5), ("resid_pdrop", 0.5));
        var ids = Inputs(model).InputIds!;
        var options = new GenerationOptions { MaxNewTokens = 6, PadTokenId = 0, OutputScores = true };
        model.eval();
        using var reference = TextGenerator.Generate(model, ids, options: options);
        model.train();
        model.Dropout.Generator = new Generator(9);
        using var whileTraining = TextGenerator.Generate(model, ids, options: options);
        Assert.True(model.training);
        GoldenData.AssertClose(reference.StackedScores(), whileTraining.StackedScores(), 0, "scores");
    }
}
