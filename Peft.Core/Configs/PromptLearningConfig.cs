using System.Text.Json.Nodes;

using Peft.Core.IO;
using Peft.Core.Models;

namespace Peft.Core.Configs;

/// <summary>
/// Fields shared by the prompt-learning methods (PEFT's <c>PromptLearningConfig</c>). The model-shape fields
/// (<c>token_dim</c>, <c>num_layers</c> ...) may be left null: <see cref="FillFromModel"/> takes them from the base
/// model when the adapter is added, and the filled values are what gets saved.
/// </summary>
public abstract class PromptLearningConfig : PeftConfig
{
    public int? NumVirtualTokens { get; set; }
    public int? TokenDim { get; set; }
    public int? NumTransformerSubmodules { get; set; }
    public int? NumAttentionHeads { get; set; }
    public int? NumLayers { get; set; }

    public override bool IsPromptLearning => true;

    /// <summary>Rows of the virtual-token table: num_virtual_tokens × num_transformer_submodules.</summary>
    public int TotalVirtualTokens => NumVirtualTokens!.Value * (NumTransformerSubmodules ?? 1);

    protected string Name => GetType().Name;

    public override void Validate()
    {
        // PEFT picks the model wrapper (and so the forward behaviour) from task_type, so it cannot be guessed.
        if (TaskType is null)
            throw new PeftConfigException($"{Name}: 'task_type' is required for prompt learning (CAUSAL_LM, SEQ_2_SEQ_LM, SEQ_CLS, TOKEN_CLS, QUESTION_ANS or FEATURE_EXTRACTION)");
        if (NumVirtualTokens is null) throw new PeftConfigException($"{Name}: 'num_virtual_tokens' is required");
        if (NumVirtualTokens <= 0) throw new PeftConfigException($"{Name}: 'num_virtual_tokens' must be a positive integer, got {NumVirtualTokens}");
        Positive(TokenDim, "token_dim");
        Positive(NumAttentionHeads, "num_attention_heads");
        Positive(NumLayers, "num_layers");
        if (NumTransformerSubmodules is not null and not (1 or 2))
            throw new PeftConfigException($"{Name}: 'num_transformer_submodules' must be 1 or 2, got {NumTransformerSubmodules}");
    }

    protected void Positive(int? value, string key)
    {
        if (value is <= 0) throw new PeftConfigException($"{Name}: '{key}' must be a positive integer, got {value}");
    }

    /// <summary>
    /// PEFT's <c>_prepare_prompt_learning_config</c>: missing shape fields come from the model config; the task type
    /// must match the model's head (it decides how virtual tokens enter the model).
    /// </summary>
    public virtual void FillFromModel(ModelShape model)
    {
        if (TaskType != model.Task)
            throw new PeftConfigException($"{Name}: task_type {TaskType?.ToPeftString()} does not match the model's head ({model.Task.ToPeftString()})");
        NumTransformerSubmodules ??= TaskType == Models.TaskType.Seq2SeqLM ? 2 : 1;
        NumLayers ??= model.NumLayers;
        TokenDim ??= model.HiddenSize;
        NumAttentionHeads ??= model.NumAttentionHeads;
    }

    protected sealed override void WriteFields(JsonObject o)
    {
        o["num_virtual_tokens"] = NumVirtualTokens;
        o["token_dim"] = TokenDim;
        o["num_transformer_submodules"] = NumTransformerSubmodules;
        o["num_attention_heads"] = NumAttentionHeads;
        o["num_layers"] = NumLayers;
        WriteMethodFields(o);
    }

    protected sealed override void ReadFields(JsonFieldReader r)
    {
        NumVirtualTokens = r.Int("num_virtual_tokens");
        TokenDim = r.Int("token_dim");
        NumTransformerSubmodules = r.Int("num_transformer_submodules");
        NumAttentionHeads = r.Int("num_attention_heads");
        NumLayers = r.Int("num_layers");
        ReadMethodFields(r);
    }

    protected abstract void WriteMethodFields(JsonObject o);
    protected abstract void ReadMethodFields(JsonFieldReader r);
}
