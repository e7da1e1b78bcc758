using Peft.Tests.Support;
using Peft.Training.Generation;
using Peft.Training.Models;
using TorchSharp;

namespace Peft.Tests.Generation;

public class GenerationConfigTests
{
    [Fact]
    public void LoadsTheGoldenModelsGenerationConfig()
    {
        using var model = AutoModel.FromPretrained(GoldenData.Dir("llama_base"));
        var c = GenerationConfig.ForModel(model);
        Assert.Equal(new[] { 2 }, c.EosTokenIds);
        Assert.Equal(1, c.BosTokenId);
        Assert.Null(c.PadTokenId);
        Assert.Null(c.MaxNewTokens);
    }

    [Fact]
    public void ParsesListsAndSamplingFieldsAndFallsBackToConfigJson()
    {
        string dir = Path.Combine(Path.GetTempPath(), "peft-gencfg-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string path = Path.Combine(dir, GenerationConfig.FileName);
            File.WriteAllText(path, """
                {"eos_token_id": [128001, 128009], "pad_token_id": 5, "max_new_tokens": 64, "do_sample": true,
                 "temperature": 0.6, "top_k": 0, "top_p": 0.9, "num_beams": 2, "early_stopping": true}
                """);
            var c = GenerationConfig.Load(path);
            Assert.Equal(new[] { 128001, 128009 }, c.EosTokenIds);
            Assert.Equal((5, 64, true, 0.6, 0, 0.9, 2, true),
                (c.PadTokenId, c.MaxNewTokens, c.DoSample, c.Temperature, c.TopK, c.TopP, c.NumBeams, c.EarlyStopping));

            // A model folder without generation_config.json uses config.json's token ids.
            using var model = AutoModel.FromPretrained(GoldenData.Dir("gpt2_base"));
            File.Delete(path);
            model.NameOrPath = dir;
            Assert.Equal(new[] { 2 }, GenerationConfig.ForModel(model).EosTokenIds);

            File.WriteAllText(path, "[1, 2]");
            Assert.Throws<ModelConfigException>(() => GenerationConfig.Load(path));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void WarpersFollowTransformers()
    {
        using var scope = torch.NewDisposeScope();
        // probabilities 0.6, 0.25, 0.1, 0.05
        var logits = torch.tensor(new[] { 0.6f, 0.25f, 0.1f, 0.05f }).log().unsqueeze(0);
        static bool[] Kept(TorchSharp.torch.Tensor t) => t.isfinite().squeeze(0).data<bool>().ToArray();
        Assert.Equal(new[] { true, true, false, false }, Kept(LogitsWarpers.TopK(logits, 2)));
        Assert.Equal(new[] { true, true, true, true }, Kept(LogitsWarpers.TopK(logits, 10)));
        // top_p 0.8: 0.6 + 0.25 is the smallest set reaching 0.8.
        Assert.Equal(new[] { true, true, false, false }, Kept(LogitsWarpers.TopP(logits, 0.8)));
        Assert.Equal(new[] { true, false, false, false }, Kept(LogitsWarpers.TopP(logits, 0.5)));
        Assert.Equal(new[] { true, false, false, false }, Kept(LogitsWarpers.TopP(logits, 0.0)));
        var warmed = LogitsWarpers.Apply(logits, 2.0, 0, 1.0);
        GoldenData.AssertClose(logits / 2.0, warmed, 1e-7, "temperature");
    }
}
