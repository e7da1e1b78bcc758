namespace Peft.Training.Training;

public enum OptimizerKind { AdamW, Sgd }

/// <summary>
/// Trainer settings, named and defaulted after transformers' <c>TrainingArguments</c> where one exists
/// (learning_rate 5e-5, 3 epochs, batch 8, AdamW β 0.9/0.999 ε 1e-8, linear schedule, max_grad_norm 1, seed 42).
/// </summary>
public sealed record TrainingOptions
{
    /// <summary>Folder for checkpoints (<c>checkpoint-N/</c>) and the final model/adapter.</summary>
    public required string OutputDir { get; init; }
    public double Epochs { get; init; } = 3;
    /// <summary>Positive: stop after this many optimizer steps (overrides <see cref="Epochs"/>).</summary>
    public int MaxSteps { get; init; } = -1;
    public int BatchSize { get; init; } = 8;
    public int EvalBatchSize { get; init; } = 8;
    public int GradientAccumulationSteps { get; init; } = 1;

    public OptimizerKind Optimizer { get; init; } = OptimizerKind.AdamW;
    public double LearningRate { get; init; } = 5e-5;
    /// <summary>Decoupled for AdamW, L2 for SGD; biases and norm weights are never decayed (as transformers does).</summary>
    public double WeightDecay { get; init; }
    public double AdamBeta1 { get; init; } = 0.9;
    public double AdamBeta2 { get; init; } = 0.999;
    public double AdamEpsilon { get; init; } = 1e-8;
    public double SgdMomentum { get; init; }
    /// <summary>LoRA+: B matrices train at learning rate × this ratio (PEFT's <c>loraplus_lr_ratio</c>); null = off.</summary>
    public double? LoraPlusLrRatio { get; init; }
    /// <summary>LoRA+: learning rate of LoRA embedding matrices (PEFT's <c>loraplus_lr_embedding</c>).</summary>
    public double LoraPlusLrEmbedding { get; init; } = 1e-6;

    public SchedulerKind Scheduler { get; init; } = SchedulerKind.Linear;
    public int WarmupSteps { get; init; }
    /// <summary>Warmup as a fraction of the total steps (used when <see cref="WarmupSteps"/> is 0).</summary>
    public double WarmupRatio { get; init; }
    /// <summary>Clip the global gradient L2 norm to this; 0 = no clipping (the norm is still reported).</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    public int Seed { get; init; } = 42;
    /// <summary>Reshuffle the training examples every epoch (seeded by <see cref="Seed"/> and the epoch).</summary>
    public bool Shuffle { get; init; } = true;
    public bool GradientCheckpointing { get; init; }

    /// <summary>Evaluate every N optimizer steps (0 = only at the end, when there is evaluation data).</summary>
    public int EvalEvery { get; init; }
    /// <summary>Write a checkpoint every N optimizer steps (0 = only at the end).</summary>
    public int SaveEvery { get; init; }
    /// <summary>Keep at most this many checkpoints (oldest deleted); null = keep all.</summary>
    public int? SaveTotalLimit { get; init; }
    /// <summary>Stop when eval loss has not improved by more than the threshold for this many evaluations; null = never.</summary>
    public int? EarlyStoppingPatience { get; init; }
    public double EarlyStoppingThreshold { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        static void Check(bool ok, string field, string problem)
        {
            if (!ok) throw new ArgumentException($"{field} {problem}");
        }
        Check(!string.IsNullOrWhiteSpace(OutputDir), "output_dir", "is required");
        Check(Epochs > 0 || MaxSteps > 0, "num_train_epochs", "must be positive (or set max_steps)");
        Check(BatchSize > 0, "per_device_train_batch_size", "must be positive");
        Check(EvalBatchSize > 0, "per_device_eval_batch_size", "must be positive");
        Check(GradientAccumulationSteps > 0, "gradient_accumulation_steps", "must be positive");
        Check(LearningRate > 0 && double.IsFinite(LearningRate), "learning_rate", "must be a positive number");
        Check(WeightDecay >= 0, "weight_decay", "must not be negative");
        Check(AdamBeta1 is >= 0 and < 1, "adam_beta1", "must be in [0, 1)");
        Check(AdamBeta2 is >= 0 and < 1, "adam_beta2", "must be in [0, 1)");
        Check(AdamEpsilon > 0, "adam_epsilon", "must be positive");
        Check(SgdMomentum >= 0, "momentum", "must not be negative");
        Check(LoraPlusLrRatio is null or > 0, "loraplus_lr_ratio", "must be positive");
        Check(WarmupSteps >= 0, "warmup_steps", "must not be negative");
        Check(WarmupRatio is >= 0 and < 1, "warmup_ratio", "must be in [0, 1)");
        Check(MaxGradNorm >= 0, "max_grad_norm", "must not be negative");
        Check(EvalEvery >= 0, "eval_steps", "must not be negative");
        Check(SaveEvery >= 0, "save_steps", "must not be negative");
        Check(SaveTotalLimit is null or > 0, "save_total_limit", "must be positive");
        Check(EarlyStoppingPatience is null or > 0, "early_stopping_patience", "must be positive");
    }
}
