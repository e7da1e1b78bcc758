using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tokenization;
using Peft.Training.Tuners;
using Peft.Training.Tuners.PrefixTuning;
using Peft.Training.Tuners.PromptTuning;
using Peft.Training.Tuners.PTuning;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Tuners.PromptLearning;

public class PromptLearningBehaviourTests
{
    private static PretrainedModel Model(string name)
    {
        var m = AutoModel.FromPretrained(GoldenData.Dir(name));
        m.eval();
        return m;
    }

    private static ForwardArgs Batch(Dictionary<string, Tensor> e, Tensor? mask = null, Tensor? positions = null) =>
        new() { InputIds = e["input_ids"], AttentionMask = mask ?? e["attention_mask"], PositionIds = positions };

    private static Tensor Run(PeftModel peft, ForwardArgs args)
    {
        using var noGrad = torch.no_grad();
        using var o = peft.Forward(args);
        return o.Logits.clone();
    }

    [Theory]
    [InlineData("llama_prefix_tuning")]
    [InlineData("llama_prompt_tuning")]
    [InlineData("gpt2_p_tuning")]
    public void LoadingAsTrainableIsRefused(string caseName)
    {
        using var model = Model(caseName.StartsWith("llama", StringComparison.Ordinal) ? "llama_base" : "gpt2_base");
        var e = Assert.Throws<ArgumentException>(() => PeftModel.FromPretrained(model, GoldenData.Dir(caseName), isTrainable: true));
        Assert.Contains("trainable", e.Message);
    }

    [Theory]
    [InlineData("llama_prefix_tuning", "prefix tuning cannot mix adapters in one batch")]
    [InlineData("llama_prompt_tuning", "prompt tuning cannot mix adapters in one batch")]
    [InlineData("llama_p_tuning", "P-tuning cannot mix adapters in one batch")]
    public void MixedBatchesAreRefused(string caseName, string message)
    {
        using var scope = torch.NewDisposeScope();
        using var peft = PeftModel.FromPretrained(Model("llama_base"), GoldenData.Dir(caseName));
        var e = Assert.Throws<PeftUserException>(() => peft.Forward(Batch(GoldenData.Expected(caseName)), ["default", "default"]));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void OnlyOneAdapterIsActiveAtATime()
    {
        using var scope = torch.NewDisposeScope();
        var e = GoldenData.Expected("llama_prefix_tuning");
        using var peft = PeftModel.FromPretrained(Model("llama_base"), GoldenData.Dir("llama_prefix_tuning"));
        peft.LoadAdapter(GoldenData.Dir("llama_prefix_tuning"), "other");
        using (torch.no_grad()) peft.AdapterTensors("other").Single().Parameter.mul_(0.5);
        Assert.Throws<ArgumentException>(() => peft.SetAdapters(["default", "other"]));
        Assert.Equal(["default"], peft.ActiveAdapters);
        peft.SetAdapter("other");
        Assert.True(GoldenData.MaxAbsDiff(e["logits"], Run(peft, Batch(e))) > 1e-2, "the second adapter must be the one used");
        peft.SetAdapter("default");
        GoldenData.AssertClose(e["logits"], Run(peft, Batch(e)), 1e-4, "back to default");
        peft.DeleteAdapter("default");
        Assert.Equal("other", peft.ActiveAdapter);
        Assert.DoesNotContain(peft.BaseModel.named_parameters(), p => p.name.StartsWith("prompt_encoder.default.", StringComparison.Ordinal));
    }

    public static TheoryData<string, PeftConfig, string[]> TrainingCases => new()
    {
        { "llama_base", new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 3, PrefixProjection = true, EncoderHiddenSize = 8 }, ["embedding.weight", "transform.0.weight", "transform.0.bias", "transform.2.weight", "transform.2.bias"] },
        { "gpt2_base", new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 3 }, ["embedding.weight"] },
        { "llama_base", new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 4, PromptTuningInit = PromptTuningInit.SampleVocab }, ["embedding.weight"] },
        { "gpt2_base", new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 4, EncoderHiddenSize = 8 }, ["embedding.weight", "mlp_head.0.weight", "mlp_head.0.bias", "mlp_head.2.weight", "mlp_head.2.bias", "mlp_head.4.weight", "mlp_head.4.bias"] },
        { "gpt2_base", new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 4, EncoderHiddenSize = 8, EncoderReparameterizationType = EncoderReparameterizationType.Lstm, EncoderDropout = 0.1 },
            ["embedding.weight", "lstm_head.weight_ih_l0", "lstm_head.weight_hh_l0", "lstm_head.bias_ih_l0", "lstm_head.bias_hh_l0",
             "lstm_head.weight_ih_l0_reverse", "lstm_head.weight_hh_l0_reverse", "lstm_head.bias_ih_l0_reverse", "lstm_head.bias_hh_l0_reverse",
             "lstm_head.weight_ih_l1", "lstm_head.weight_hh_l1", "lstm_head.bias_ih_l1", "lstm_head.bias_hh_l1",
             "lstm_head.weight_ih_l1_reverse", "lstm_head.weight_hh_l1_reverse", "lstm_head.bias_ih_l1_reverse", "lstm_head.bias_hh_l1_reverse",
             "mlp_head.0.weight", "mlp_head.0.bias", "mlp_head.2.weight", "mlp_head.2.bias"] },
    };

    [Theory, MemberData(nameof(TrainingCases))]
    public void TrainingReachesTheWholeEncoderAndNothingElse(string baseName, PeftConfig config, string[] encoderParams)
    {
        using var scope = torch.NewDisposeScope();
        var e = GoldenData.Expected(baseName);
        using var peft = PeftModel.Create(Model(baseName), config.Clone(), seed: 11);
        var trainable = peft.BaseModel.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        Assert.Equal(encoderParams.Select(n => "prompt_encoder.default." + n).Order(), trainable.Order());
        Assert.Equal(trainable.Count, peft.Tuner.TrainableParameters("default").Count());

        peft.BaseModel.train();
        using (var o = peft.Forward(Batch(e))) o.Logits.square().mean().backward();
        Assert.All(peft.BaseModel.named_parameters(), p => Assert.Equal(p.parameter.requires_grad, p.parameter.grad is not null));

        // Saved = the encoder output only; reloaded for inference it gives the same logits.
        peft.BaseModel.eval();
        var before = Run(peft, Batch(e));
        using var tmp = new TempDir();
        peft.SavePretrained(tmp.Path);
        var saved = Safetensors.Load(Path.Combine(tmp.Path, "adapter_model.safetensors"));
        Assert.Equal(["prompt_embeddings"], saved.Keys);
        using var reloaded = PeftModel.FromPretrained(Model(baseName), tmp.Path);
        GoldenData.AssertClose(before, Run(reloaded, Batch(e)), 1e-5, "reloaded logits");
    }

    [Fact]
    public void SeededEncodersAreReproducibleAndLstmUsesTorchInitBounds()
    {
        using var scope = torch.NewDisposeScope();
        var config = new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 4, EncoderHiddenSize = 8, EncoderReparameterizationType = EncoderReparameterizationType.Lstm };
        using var a = PeftModel.Create(Model("gpt2_base"), config.Clone(), seed: 5);
        using var b = PeftModel.Create(Model("gpt2_base"), config.Clone(), seed: 5);
        var pa = a.BaseModel.named_parameters().Where(p => p.name.StartsWith("prompt_encoder", StringComparison.Ordinal)).ToList();
        var pb = b.BaseModel.named_parameters().Where(p => p.name.StartsWith("prompt_encoder", StringComparison.Ordinal)).ToList();
        Assert.Equal(pa.Count, pb.Count);
        foreach (var (x, y) in pa.Zip(pb)) GoldenData.AssertClose(x.parameter, y.parameter, 0, x.name);
        Assert.All(pa.Where(p => p.name.Contains("lstm_head")), p => Assert.True(p.parameter.abs().max().item<float>() <= 1 / Math.Sqrt(8) + 1e-6));
        // LSTM: 2 layers × 2 directions × (4h·in + 4h·h + 8h); head: (2h·2h + 2h) + (2h·64 + 64); table 4·64.
        long lstm = 2 * (4 * 8 * 64 + 4 * 8 * 8 + 8 * 8) + 2 * (4 * 8 * 16 + 4 * 8 * 8 + 8 * 8);
        Assert.Equal(4 * 64 + lstm + (16 * 16 + 16) + (16 * 64 + 64), a.GetNbTrainableParameters().Trainable);
    }

    [Fact]
    public void SampleVocabCopiesRowsOfTheWordEmbeddings()
    {
        using var scope = torch.NewDisposeScope();
        using var peft = PeftModel.Create(Model("llama_base"), new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 6, PromptTuningInit = PromptTuningInit.SampleVocab }, seed: 2);
        var table = ((PromptTuningTuner)peft.Tuner).Encoder("default").Embedding.weight;
        var words = peft.BaseModel.InputEmbeddings.weight;
        for (int i = 0; i < 6; i++)
            Assert.True(words.eq(table[i].unsqueeze(0)).all(1).any().item<bool>(), $"row {i} is not a word embedding");
    }

    [Theory]
    [InlineData(7)]
    [InlineData(1)]
    public void TextInitCopiesTheEmbeddingsOfTheTokenisedText(int virtualTokens)
    {
        using var scope = torch.NewDisposeScope();
        using var root = new TempDir();
        // A GPT-2 with the gpt2-tiny fixture's vocabulary, saved next to a copy of the tokenizer.
        var config = ModelConfig.Parse("{\"model_type\":\"gpt2\",\"vocab_size\":4001,\"n_embd\":16,\"n_head\":2,\"n_layer\":1,\"n_positions\":64}");
        using (var fresh = AutoModel.FromConfig(config)) { fresh.InitWeights(3); fresh.SavePretrained(root.Sub("tiny-gpt2")); }
        string tokDir = root.Sub("tok");
        Directory.CreateDirectory(tokDir);
        foreach (var f in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", "gpt2-tiny")))
            File.Copy(f, Path.Combine(tokDir, Path.GetFileName(f)));
        const string text = "Is this review positive?";
        long[] ids;
        using (var tok = AutoTokenizer.FromFolder(tokDir)) ids = tok.Encode(text).Select(i => (long)i).ToArray();
        Assert.True(ids.Length > 1 && ids.Length < 7);

        // "tok" is relative: found next to the base model's folder, like AutoPeftModel finds base models.
        var cfg = new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = virtualTokens, PromptTuningInit = PromptTuningInit.Text, PromptTuningInitText = text, TokenizerNameOrPath = "tok" };
        using var peft = PeftModel.Create(AutoModel.FromPretrained(root.Sub("tiny-gpt2")), cfg);
        var expectedIds = torch.tensor(Enumerable.Range(0, virtualTokens).Select(i => ids[i % ids.Length]).ToArray());
        var expected = peft.BaseModel.InputEmbeddings.weight.index_select(0, expectedIds);
        GoldenData.AssertClose(expected, ((PromptTuningTuner)peft.Tuner).Encoder("default").Embedding.weight, 0, "table rows");

        var missing = cfg.Clone();
        ((PromptTuningConfig)missing).TokenizerNameOrPath = "no-such-tokenizer";
        using var model = AutoModel.FromPretrained(root.Sub("tiny-gpt2"));
        Assert.Contains("no-such-tokenizer", Assert.Throws<PeftConfigException>(() => PeftModel.Create(model, missing)).Message);
    }

    [Fact]
    public void VirtualTokensAreReportedForLabelShifting()
    {
        using var scope = torch.NewDisposeScope();
        using var prompt = PeftModel.FromPretrained(Model("llama_base"), GoldenData.Dir("llama_prompt_tuning"));
        var tuner = Assert.IsAssignableFrom<IVirtualTokenTuner>(prompt.Tuner);
        Assert.Equal(5, tuner.VirtualTokensPrepended);
        using (prompt.DisableAdapters()) Assert.Equal(0, tuner.VirtualTokensPrepended);
        using var prefix = PeftModel.FromPretrained(Model("llama_base"), GoldenData.Dir("llama_prefix_tuning"));
        Assert.False(prefix.Tuner is IVirtualTokenTuner, "prefix tuning adds no positions to the sequence");
    }

    [Theory]
    [InlineData("llama_prefix_tuning")]
    [InlineData("gpt2_prompt_tuning")]
    public void MasksAndPositionIdsAreHandledLikePeft(string caseName)
    {
        using var scope = torch.NewDisposeScope();
        var e = GoldenData.Expected(caseName);
        using var peft = PeftModel.FromPretrained(Model(caseName.StartsWith("llama", StringComparison.Ordinal) ? "llama_base" : "gpt2_base"), GoldenData.Dir(caseName));
        var mask = e["attention_mask"];
        // A mask that already covers the 5 virtual tokens is used as is.
        var full = torch.cat([torch.ones(2, 5, ScalarType.Int64), mask], 1);
        GoldenData.AssertClose(e["logits"], Run(peft, Batch(e, full)), 1e-4, "pre-extended mask");
        // PEFT ignores position_ids for prompt learning.
        var odd = torch.arange(7L).flip(0).unsqueeze(0).expand(2, -1);
        GoldenData.AssertClose(e["logits"], Run(peft, Batch(e, positions: odd)), 1e-4, "position ids ignored");
        Assert.Contains("attention mask has 9 columns", Assert.Throws<ArgumentException>(() => Run(peft, Batch(e, full.narrow(1, 0, 9)))).Message);
    }

    [Fact]
    public void UnloadGivesBackThePlainBaseModel()
    {
        using var scope = torch.NewDisposeScope();
        var e = GoldenData.Expected("gpt2_p_tuning");
        using var peft = PeftModel.FromPretrained(Model("gpt2_base"), GoldenData.Dir("gpt2_p_tuning"));
        using var plain = peft.Unload();
        Assert.DoesNotContain(plain.named_parameters(), p => p.name.StartsWith("prompt_encoder", StringComparison.Ordinal));
        using var noGrad = torch.no_grad();
        using var o = plain.Forward(Batch(e));
        GoldenData.AssertClose(e["base_logits"], o.Logits, 1e-4, "base logits");
    }
}
