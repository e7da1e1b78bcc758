namespace Peft.Core.Models;

/// <summary>PEFT's <c>task_type</c>: which head the base model carries.</summary>
public enum TaskType
{
    CausalLM,
    Seq2SeqLM,
    SequenceClassification,
    TokenClassification,
    QuestionAnswering,
    FeatureExtraction,
}

public static class TaskTypes
{
    public static string ToPeftString(this TaskType t) => t switch
    {
        TaskType.CausalLM => "CAUSAL_LM",
        TaskType.Seq2SeqLM => "SEQ_2_SEQ_LM",
        TaskType.SequenceClassification => "SEQ_CLS",
        TaskType.TokenClassification => "TOKEN_CLS",
        TaskType.QuestionAnswering => "QUESTION_ANS",
        TaskType.FeatureExtraction => "FEATURE_EXTRACTION",
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    public static TaskType? Parse(string? s) => s switch
    {
        null => null,
        "CAUSAL_LM" => TaskType.CausalLM,
        "SEQ_2_SEQ_LM" => TaskType.Seq2SeqLM,
        "SEQ_CLS" => TaskType.SequenceClassification,
        "TOKEN_CLS" => TaskType.TokenClassification,
        "QUESTION_ANS" => TaskType.QuestionAnswering,
        "FEATURE_EXTRACTION" => TaskType.FeatureExtraction,
        _ => throw new ArgumentException($"unknown task_type '{s}' (expected CAUSAL_LM, SEQ_2_SEQ_LM, SEQ_CLS, TOKEN_CLS, QUESTION_ANS or FEATURE_EXTRACTION)"),
    };
}
