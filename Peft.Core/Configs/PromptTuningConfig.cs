using System.Text.Json.Nodes;

using Peft.Core.IO;
using Peft.Core.Models;

namespace Peft.Core.Configs;

/// <summary>How the prompt table starts (PEFT's <c>PromptTuningInit</c>).</summary>
public enum PromptTuningInit
{
    /// <summary>N(0, 1), nn.Embedding's default.</summary>
    Random,
    /// <summary>Word embeddings of random vocabulary ids.</summary>
    SampleVocab,
    /// <summary>Word embeddings of a tokenised text, cut or repeated to the table length.</summary>
    Text,
}

/// <summary>PEFT's <c>PromptTuningConfig</c>: a trainable [num_virtual_tokens·num_transformer_submodules, token_dim] table.</summary>
public sealed class PromptTuningConfig : PromptLearningConfig
{
    public override string PeftType => "PROMPT_TUNING";

    public PromptTuningInit PromptTuningInit { get; set; } = PromptTuningInit.Random;
    public string? PromptTuningInitText { get; set; }
    /// <summary>Folder (or name under a model root) holding tokenizer.json, for TEXT init.</summary>
    public string? TokenizerNameOrPath { get; set; }
    /// <summary>Kept for round trips; our tokenizer loader takes no options, so they are not applied.</summary>
    public JsonObject? TokenizerKwargs { get; set; }

    public override void Validate()
    {
        base.Validate();
        if (PromptTuningInit == PromptTuningInit.Text)
        {
            if (string.IsNullOrWhiteSpace(TokenizerNameOrPath))
                throw new PeftConfigException("PromptTuningConfig: prompt_tuning_init TEXT requires 'tokenizer_name_or_path'");
            if (string.IsNullOrEmpty(PromptTuningInitText))
                throw new PeftConfigException("PromptTuningConfig: prompt_tuning_init TEXT requires 'prompt_tuning_init_text'");
        }
        else if (TokenizerKwargs is { Count: > 0 })
        {
            throw new PeftConfigException("PromptTuningConfig: 'tokenizer_kwargs' only applies when prompt_tuning_init is TEXT");
        }
    }

    protected override void WriteMethodFields(JsonObject o)
    {
        o["prompt_tuning_init"] = PromptTuningInit switch
        {
            PromptTuningInit.SampleVocab => "SAMPLE_VOCAB",
            PromptTuningInit.Text => "TEXT",
            _ => "RANDOM",
        };
        o["prompt_tuning_init_text"] = PromptTuningInitText;
        o["tokenizer_name_or_path"] = TokenizerNameOrPath;
        o["tokenizer_kwargs"] = TokenizerKwargs?.DeepClone();
    }

    protected override void ReadMethodFields(JsonFieldReader r)
    {
        PromptTuningInit = r.String("prompt_tuning_init") switch
        {
            null or "RANDOM" => PromptTuningInit.Random,
            "SAMPLE_VOCAB" => PromptTuningInit.SampleVocab,
            "TEXT" => PromptTuningInit.Text,
            var other => throw r.Error("prompt_tuning_init", $"must be RANDOM, SAMPLE_VOCAB or TEXT, got \"{other}\""),
        };
        PromptTuningInitText = r.String("prompt_tuning_init_text");
        TokenizerNameOrPath = r.String("tokenizer_name_or_path");
        var kwargs = r.Raw("tokenizer_kwargs");
        TokenizerKwargs = kwargs switch
        {
            null => null,
            JsonObject o => o,
            _ => throw r.Error("tokenizer_kwargs", $"must be an object, got {kwargs.ToJsonString()}"),
        };
    }
}
