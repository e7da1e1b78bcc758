using System.Text.Json.Nodes;
using Peft.Tests.Support;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Training.Tuners.PrefixTuning;
using Peft.Training.Tuners.PromptTuning;
using Peft.Training.Tuners.PTuning;
using TorchSharp;

namespace Peft.Tests.Tuners.PromptLearning;

public class PromptLearningConfigTests
{
    private static PretrainedModel Model(string name) => AutoModel.FromPretrained(GoldenData.Dir(name));

    private static PeftConfigException Rejected(Action act) => Assert.Throws<PeftConfigException>(act);

    private static PeftConfig Parse(string json) => PeftConfigs.Parse((JsonObject)JsonNode.Parse(json)!, "adapter_config.json");

    [Fact]
    public void MissingTaskTypeIsRejected()
    {
        using var model = Model("llama_base");
        var e = Rejected(() => PeftModel.Create(model, new PrefixTuningConfig { NumVirtualTokens = 5 }));
        Assert.Contains("task_type", e.Message);
        e = Rejected(() => Parse("{\"peft_type\":\"PROMPT_TUNING\",\"num_virtual_tokens\":5}"));
        Assert.Contains("task_type", e.Message);
        Assert.DoesNotContain(model.named_parameters(), p => p.name.StartsWith("prompt_encoder", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("PREFIX_TUNING", "0")]
    [InlineData("PROMPT_TUNING", "-3")]
    [InlineData("P_TUNING", "null")]
    public void NumVirtualTokensMustBePositive(string peftType, string value)
    {
        var e = Rejected(() => Parse($"{{\"peft_type\":\"{peftType}\",\"task_type\":\"CAUSAL_LM\",\"num_virtual_tokens\":{value}}}"));
        Assert.Contains("num_virtual_tokens", e.Message);
        Assert.Contains("num_virtual_tokens", Rejected(() => new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 0 }.Validate()).Message);
    }

    [Fact]
    public void TextInitNeedsTextAndTokenizer()
    {
        var noText = new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 4, PromptTuningInit = PromptTuningInit.Text, TokenizerNameOrPath = "gpt2" };
        Assert.Contains("prompt_tuning_init_text", Rejected(noText.Validate).Message);
        var noTokenizer = new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 4, PromptTuningInit = PromptTuningInit.Text, PromptTuningInitText = "hi" };
        Assert.Contains("tokenizer_name_or_path", Rejected(noTokenizer.Validate).Message);
        var kwargs = new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 4, TokenizerKwargs = new JsonObject { ["use_fast"] = true } };
        Assert.Contains("tokenizer_kwargs", Rejected(kwargs.Validate).Message);
    }

    [Fact]
    public void UnknownEnumValuesAreRejected()
    {
        var e = Rejected(() => Parse("{\"peft_type\":\"P_TUNING\",\"task_type\":\"CAUSAL_LM\",\"num_virtual_tokens\":5,\"encoder_reparameterization_type\":\"GRU\"}"));
        Assert.Contains("encoder_reparameterization_type", e.Message);
        Assert.Contains("GRU", e.Message);
        e = Rejected(() => Parse("{\"peft_type\":\"PROMPT_TUNING\",\"task_type\":\"CAUSAL_LM\",\"num_virtual_tokens\":5,\"prompt_tuning_init\":\"ZEROS\"}"));
        Assert.Contains("prompt_tuning_init", e.Message);
        e = Rejected(() => Parse("{\"peft_type\":\"P_TUNING\",\"task_type\":\"CAUSAL_LM\",\"num_virtual_tokens\":5,\"encoder_dropout\":1.5}"));
        Assert.Contains("encoder_dropout", e.Message);
    }

    [Fact]
    public void TaskTypeMustMatchTheModelHead()
    {
        using var model = Model("gpt2_base");
        var e = Rejected(() => PeftModel.Create(model, new PromptTuningConfig { TaskType = TaskType.Seq2SeqLM, NumVirtualTokens = 5 }));
        Assert.Contains("SEQ_2_SEQ_LM", e.Message);
    }

    [Fact]
    public void ShapeFieldsComeFromTheModelWithGqaForPrefixes()
    {
        using var scope = torch.NewDisposeScope();
        // llama_base: hidden 64, 4 heads, 2 key/value heads → the prefix is 2 heads × 16 wide (PEFT >= 0.12).
        using (var peft = PeftModel.Create(Model("llama_base"), new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 5 }))
        {
            var c = (PrefixTuningConfig)peft.ActiveConfig;
            Assert.Equal((32, 2, 2, 1, 32), (c.TokenDim, c.NumAttentionHeads, c.NumLayers, c.NumTransformerSubmodules, c.EncoderHiddenSize));
            Assert.Equal("llama_base", Path.GetFileName(c.BaseModelNameOrPath));
        }
        // Explicit full-width values are narrowed the same way (idempotent for already-narrowed ones).
        using (var peft = PeftModel.Create(Model("llama_base"), new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 5, TokenDim = 64, NumAttentionHeads = 4 }))
            Assert.Equal((32, 2), (((PrefixTuningConfig)peft.ActiveConfig).TokenDim, ((PrefixTuningConfig)peft.ActiveConfig).NumAttentionHeads));
        // Prompt tuning keeps the embedding width.
        using (var peft = PeftModel.Create(Model("llama_base"), new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 5 }))
            Assert.Equal((64, 4, 2), (((PromptTuningConfig)peft.ActiveConfig).TokenDim, ((PromptTuningConfig)peft.ActiveConfig).NumAttentionHeads, ((PromptTuningConfig)peft.ActiveConfig).NumLayers));
        using (var peft = PeftModel.Create(Model("gpt2_base"), new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 5 }))
        {
            var c = (PromptEncoderConfig)peft.ActiveConfig;
            Assert.Equal((64, 4, 2, 64), (c.TokenDim, c.NumAttentionHeads, c.NumLayers, c.EncoderHiddenSize));
        }
    }

    [Fact]
    public void ConfigsThatDoNotFitTheModelAreRejected()
    {
        using var scope = torch.NewDisposeScope();
        using var gpt2 = Model("gpt2_base");
        Assert.Contains("num_layers", Rejected(() => PeftModel.Create(gpt2, new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 5, NumLayers = 3 })).Message);
        Assert.Contains("token_dim", Rejected(() => PeftModel.Create(gpt2, new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 5, TokenDim = 32 })).Message);
        Assert.Contains("token_dim", Rejected(() => PeftModel.Create(gpt2, new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 5, TokenDim = 32 })).Message);
        Assert.Contains("encoder_hidden_size", Rejected(() => PeftModel.Create(gpt2, new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 5, EncoderHiddenSize = 0 })).Message);
    }

    [Fact]
    public void ConfigsRoundTripThroughJson()
    {
        var configs = new PeftConfig[]
        {
            new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 7, EncoderReparameterizationType = EncoderReparameterizationType.Lstm, EncoderHiddenSize = 12, EncoderNumLayers = 3, EncoderDropout = 0.25 },
            new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 3, PromptTuningInit = PromptTuningInit.Text, PromptTuningInitText = "Classify:", TokenizerNameOrPath = "org/tok", TokenizerKwargs = new JsonObject { ["add_prefix_space"] = true } },
            new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2, PrefixProjection = true, EncoderHiddenSize = 8, TokenDim = 16, NumLayers = 2, NumAttentionHeads = 2 },
        };
        foreach (var c in configs)
        {
            var json = c.ToJson();
            Assert.Equal(json.ToJsonString(), PeftConfigs.Parse(json, "x").ToJson().ToJsonString());
            Assert.True(c.IsPromptLearning);
        }
        Assert.Equal("LSTM", configs[0].ToJson()["encoder_reparameterization_type"]!.GetValue<string>());
        Assert.Equal("TEXT", configs[1].ToJson()["prompt_tuning_init"]!.GetValue<string>());
    }

    [Theory]
    [InlineData(20, 983_040)]
    [InlineData(30, 1_474_560)]
    public void PrefixCountsOfThePublishedBloomz560mExamples(int virtualTokens, long trainable)
    {
        // bloomz-560m itself needs BLOOM; its prefix only depends on 24 layers × hidden 1024 (no GQA), so a Llama of
        // that shape on the meta device gives the published trainable count (all-params needs the real architecture).
        var cfg = ModelConfig.Parse("{\"model_type\":\"llama\",\"vocab_size\":1024,\"hidden_size\":1024,\"intermediate_size\":4096,\"num_hidden_layers\":24,\"num_attention_heads\":16,\"num_key_value_heads\":16}");
        var model = AutoModel.FromConfig(cfg, new ModelLoadOptions { Device = torch.META });
        long baseCount = model.UniqueNamedParameters().Sum(p => p.Param.numel());
        using var peft = PeftModel.Create(model, new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = virtualTokens });
        Assert.Equal((trainable, baseCount + trainable), peft.GetNbTrainableParameters());
    }
}
