namespace Peft.Core.Models;

/// <summary>
/// The dimensions of a base model that adapter configs are completed and checked against (PEFT's
/// <c>_prepare_prompt_learning_config</c> reads the same fields), known without building the model.
/// </summary>
public sealed record ModelShape(TaskType Task, int NumLayers, int HiddenSize, int NumAttentionHeads, int NumKeyValueHeads, ModelConfig Config);
