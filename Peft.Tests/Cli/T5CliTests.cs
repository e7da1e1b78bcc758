using System.Globalization;
using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;

namespace Peft.Tests.Cli;

/// <summary>
/// T5 through the library and the CLI: the published mt0-large LoRA row (PEFT README: trainable 2,359,296 / all
/// 1,231,940,608) from config.json alone on the meta device (shared embeddings counted once, untied lm_head, LoRA r=8 on
/// q and v of 24 encoder self-, 24 decoder self- and 24 cross-attention layers), and <c>peft forward</c> with
/// decoder_input_ids.
/// </summary>
public class T5CliTests
{
    private static string Dir => CliHarness.Golden("param_counts", "mt0-large");

    [Fact]
    public void Mt0LargeLoraCountsMatchThePublishedNumbers()
    {
        var config = ModelConfig.FromFolder(Dir);
        var peftConfig = PeftConfigs.Load(Dir);
        using var model = AutoModel.FromConfig(config, new ModelLoadOptions { Device = torch.META, Task = peftConfig.TaskType });
        Assert.Equal(1_229_581_312, model.UniqueNamedParameters().Sum(p => p.Param.numel()));
        Assert.Empty(model.TiedParameterNames);
        peftConfig.InferenceMode = false;
        using var peft = PeftModel.Create(model, peftConfig);
        Assert.Equal((2_359_296L, 1_231_940_608L), peft.GetNbTrainableParameters());
        Assert.Equal("trainable params: 2,359,296 || all params: 1,231,940,608 || trainable%: 0.1915", peft.TrainableParametersSummary());
    }

    [Fact]
    public void PeftParamsCommandPrintsThem()
    {
        var r = CliHarness.Run("params", Dir, "--adapter-config", Path.Combine(Dir, "adapter_config.json"));
        r.AssertOk();
        Assert.Contains("model_type: mt5", r.Out);
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"base params: {1_229_581_312:N0}"), r.Out);
        Assert.Contains(PeftModel.FormatSummary(2_359_296, 1_231_940_608), r.Out);
    }

    [Theory]
    [InlineData("t5_base", 172_864)]
    [InlineData("mt5_base", 214_016)]
    public void TinyModelsCountLikeTransformers(string caseName, long count)
    {
        // Counts from Golden/MANIFEST.md (t5: lm_head tied to shared and not counted twice; mt5: untied).
        using var model = AutoModel.FromConfig(ModelConfig.FromFolder(GoldenData.Dir(caseName)), new ModelLoadOptions { Device = torch.META });
        Assert.Equal(count, model.UniqueNamedParameters().Sum(p => p.Param.numel()));
    }

    [Theory]
    [InlineData("t5_lora", "t5_base", "logits")]
    [InlineData("t5_lora", "t5_base", "logits_merged")]
    public void PeftForwardReadsDecoderInputIds(string caseName, string baseName, string key)
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        string output = tmp["out.safetensors"];
        string[] merge = key == "logits_merged" ? ["--merge"] : [];
        var r = CliHarness.Run(["forward", CliHarness.Golden(baseName), "--adapter", CliHarness.Golden(caseName), .. merge,
            "--input", CliHarness.ExpectedFile(caseName), "--out", output]);
        r.AssertOk();
        Assert.Contains("logits [2, 5, 128]", r.Out);
        GoldenData.AssertClose(CliHarness.ExpectedTensor(caseName, key), CliHarness.Logits(output), 1e-4, $"{caseName}/{key}");
    }
}
