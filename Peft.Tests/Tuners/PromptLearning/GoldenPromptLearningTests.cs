using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Tuners.PromptLearning;

/// <summary>Prefix tuning, prompt tuning and P-tuning adapters written by PEFT 0.10 (see Golden/MANIFEST.md).</summary>
public class GoldenPromptLearningTests
{
    public static TheoryData<string, string> Cases => new()
    {
        { "llama_prefix_tuning", "llama_base" },
        { "llama_prefix_tuning_proj", "llama_base" },
        { "llama_prompt_tuning", "llama_base" },
        { "llama_p_tuning", "llama_base" },
        { "gpt2_prefix_tuning", "gpt2_base" },
        { "gpt2_prefix_tuning_proj", "gpt2_base" },
        { "gpt2_prompt_tuning", "gpt2_base" },
        { "gpt2_p_tuning", "gpt2_base" },
        { "opt_prefix_tuning", "opt_base" },
        { "bloom_prefix_tuning", "bloom_base" },
        { "t5_prefix_tuning", "t5_base" },
        { "t5_prefix_tuning_proj", "t5_base" },
        { "t5_prompt_tuning", "t5_base" },
        { "t5_p_tuning", "t5_base" },
        { "bert_prefix_tuning", "bert_base" },
        { "bert_prefix_tuning_proj", "bert_base" },
        { "bert_prompt_tuning", "bert_base" },
        { "bert_p_tuning", "bert_base" },
    };

    private static PretrainedModel Base(string name)
    {
        var m = AutoModel.FromPretrained(GoldenData.Dir(name));
        m.eval();
        return m;
    }

    private static ForwardArgs Batch(Dictionary<string, Tensor> e) => GoldenAdapterChecks.Args(e);

    private static Tensor Run(PeftModel peft, ForwardArgs args)
    {
        using var noGrad = torch.no_grad();
        using var o = peft.Forward(args);
        return o.Logits.clone();
    }

    /// <summary>A training-mode model whose encoder (MLP included) is PEFT's, from prompt_encoder_full.safetensors.</summary>
    internal static PeftModel FullEncoderModel(string caseName, string baseName)
    {
        var config = PeftConfigs.Load(GoldenData.Dir(caseName));
        config.InferenceMode = false;
        var peft = PeftModel.Create(Base(baseName), config);
        var full = Safetensors.Load(Path.Combine(GoldenData.Dir(caseName), "prompt_encoder_full.safetensors"));
        var parameters = peft.BaseModel.named_parameters()
            .Where(p => p.name.StartsWith("prompt_encoder.default.", StringComparison.Ordinal))
            .ToDictionary(p => p.name["prompt_encoder.default.".Length..], p => p.parameter);
        Assert.Equal(full.Keys.Order(), parameters.Keys.Order());
        using (torch.no_grad())
        {
            foreach (var (key, t) in full) parameters[key].copy_(t);
            // SEQ_CLS cases also trained a copy of the classifier (modules_to_save); take PEFT's values for it.
            var saved = Safetensors.Load(Path.Combine(GoldenData.Dir(caseName), "adapter_model.safetensors"));
            foreach (var t in peft.AdapterTensors("default").Where(t => t.CheckpointKey != "prompt_embeddings"))
                t.Parameter.copy_(saved[t.CheckpointKey]);
        }
        return peft;
    }

    [Theory, MemberData(nameof(Cases))]
    public void AdapterLogitsMatchPeft(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var peft = PeftModel.FromPretrained(Base(baseName), GoldenData.Dir(caseName));
        var e = GoldenData.Expected(caseName);
        GoldenData.AssertClose(e["logits"], Run(peft, Batch(e)), 1e-4, "adapted logits");
        using (peft.DisableAdapters())
            GoldenData.AssertClose(e["base_logits"], Run(peft, Batch(e)), 1e-4, "base logits with the adapter disabled");
        Assert.False(peft.Tuner.CanMerge);
        Assert.Throws<PeftUserException>(() => peft.MergeAdapter());
        Assert.Throws<PeftUserException>(() => peft.MergeAndUnload());
    }

    [Theory, MemberData(nameof(Cases))]
    public void SavedTensorIsTheComputedPrompt(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var peft = PeftModel.FromPretrained(Base(baseName), GoldenData.Dir(caseName));
        var saved = peft.AdapterTensors("default").Single(t => t.CheckpointKey == "prompt_embeddings");
        GoldenData.AssertClose(GoldenData.Expected(caseName)["prompt_embeddings_computed"], saved.Parameter, 0, "prompt_embeddings");
    }

    [Theory, MemberData(nameof(Cases))]
    public void FullEncoderSavesTheGoldenAdapter(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        using var peft = FullEncoderModel(caseName, baseName);
        var e = GoldenData.Expected(caseName);
        GoldenData.AssertClose(e["logits"], Run(peft, Batch(e)), 1e-4, "training-mode encoder logits");
        peft.SavePretrained(tmp.Path);
        using var golden = SafetensorsFile.Open(Path.Combine(GoldenData.Dir(caseName), "adapter_model.safetensors"));
        using var mine = SafetensorsFile.Open(Path.Combine(tmp.Path, "adapter_model.safetensors"));
        Assert.Equal(golden.Entries.Select(x => x.Name).Order(), mine.Entries.Select(x => x.Name).Order());
        foreach (var entry in golden.Entries)
        {
            Assert.Equal(entry.DType, mine[entry.Name].DType);
            Assert.Equal(entry.Shape, mine[entry.Name].Shape);
            GoldenData.AssertClose(golden.Load(entry.Name), mine.Load(entry.Name), 1e-5, entry.Name);
        }
        GoldenData.AssertClose(e["prompt_embeddings_computed"], mine.Load("prompt_embeddings"), 1e-5, "computed prompt");
        Assert.Equal(PeftConfigs.Load(GoldenData.Dir(caseName)).ToJson().ToJsonString(), PeftConfigs.Load(tmp.Path).ToJson().ToJsonString());
    }

    [Theory, MemberData(nameof(Cases))]
    public void TrainableParameterCountsMatchPeft(string caseName, string baseName)
    {
        // PEFT's counts were taken on the freshly wrapped (training-mode) model, whose encoder includes any MLP.
        using var scope = torch.NewDisposeScope();
        var config = PeftConfigs.Load(GoldenData.Dir(caseName));
        config.InferenceMode = false;
        using var peft = PeftModel.Create(Base(baseName), config);
        var (trainable, all) = peft.GetNbTrainableParameters();
        Assert.Equal(GoldenData.Counts(caseName), (trainable, all));
        string printed = File.ReadAllText(Path.Combine(GoldenData.Dir(caseName), "print_trainable_parameters.txt")).Trim();
        // PEFT 0.10 printed the unrounded percentage; the counts part must match exactly.
        static string Counts(string line) => line[..line.IndexOf("trainable%", StringComparison.Ordinal)];
        Assert.Equal(Counts(printed), Counts(peft.TrainableParametersSummary()));
    }

    [Theory, MemberData(nameof(Cases))]
    public void ResavedAdapterEqualsGoldenFiles(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        using var peft = PeftModel.FromPretrained(Base(baseName), GoldenData.Dir(caseName));
        // Loaded for inference: nothing trains, and the encoder is the saved table only.
        long baseCount;
        using (var plain = Base(baseName)) baseCount = plain.UniqueNamedParameters().Sum(p => p.Param.numel());
        long table = GoldenData.Expected(caseName)["prompt_embeddings_computed"].numel();
        // SEQ_CLS: the classifier copy of modules_to_save counts too (frozen here, like everything when loaded for inference).
        long copies = peft.AdapterTensors("default").Where(t => t.CheckpointKey != "prompt_embeddings").Sum(t => t.Parameter.numel());
        Assert.Equal((0L, baseCount + table + copies), peft.GetNbTrainableParameters());
        peft.SavePretrained(tmp.Path);
        Assert.Equal(File.ReadAllBytes(Path.Combine(GoldenData.Dir(caseName), "adapter_model.safetensors")),
            File.ReadAllBytes(Path.Combine(tmp.Path, "adapter_model.safetensors")));
        Assert.Equal(PeftConfigs.Load(GoldenData.Dir(caseName)).ToJson().ToJsonString(), PeftConfigs.Load(tmp.Path).ToJson().ToJsonString());
    }

    [Theory, MemberData(nameof(Cases))]
    public void AutoPeftModelLoadsTheAdapterAndItsBase(string caseName, string baseName)
    {
        using var scope = torch.NewDisposeScope();
        using var peft = AutoPeftModel.FromPretrained(GoldenData.Dir(caseName));
        peft.BaseModel.eval();
        Assert.EndsWith(baseName, peft.BaseModel.NameOrPath);
        var e = GoldenData.Expected(caseName);
        GoldenData.AssertClose(e["logits"], Run(peft, Batch(e)), 1e-4, "logits");
    }
}
