using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models;

/// <summary>Inputs of one forward pass (a subset is used by each family).</summary>
public sealed class ForwardArgs
{
    /// <summary>int64 [batch, seq]. Either this or <see cref="InputsEmbeds"/>.</summary>
    public Tensor? InputIds { get; init; }
    /// <summary>[batch, seq, hidden]: used by prompt tuning / P-tuning, which prepend virtual token embeddings.</summary>
    public Tensor? InputsEmbeds { get; init; }
    /// <summary>int64 [batch, past + seq], 1 = attend, 0 = padding. Null = all ones. Encoder-decoder: the encoder's mask.</summary>
    public Tensor? AttentionMask { get; init; }
    /// <summary>int64 [batch, seq]. Null = past .. past+seq-1 (what transformers does without position_ids).</summary>
    public Tensor? PositionIds { get; init; }
    /// <summary>Key/value cache, read and appended to. Null = no cache.</summary>
    public KvCache? Cache { get; init; }
    public bool OutputHiddenStates { get; init; }
    public Tensor? TokenTypeIds { get; init; }
    /// <summary>Encoder-decoder: int64 [batch, seq] decoder tokens (the caller starts them with decoder_start_token_id).</summary>
    public Tensor? DecoderInputIds { get; init; }
    /// <summary>Encoder-decoder: [batch, past + seq] (or [batch, seq] for the new tokens only). Null = all ones.</summary>
    public Tensor? DecoderAttentionMask { get; init; }
    /// <summary>Encoder outputs reused across decoder steps (encoder-decoder generation).</summary>
    public Tensor? EncoderHiddenStates { get; init; }
    /// <summary>
    /// Causal LMs: logits for only the last this-many positions (transformers' <c>logits_to_keep</c>); 0 = all. A
    /// prefill needs only the last position's, which spares the vocabulary projection of every other prompt token.
    /// </summary>
    public int LogitsToKeep { get; init; }
}

/// <summary>Outputs of one forward pass. Disposing releases the tensors it owns.</summary>
public sealed class ModelOutput : IDisposable
{
    public required Tensor Logits { get; init; }
    public IReadOnlyList<Tensor>? HiddenStates { get; init; }
    /// <summary>Last hidden state (before the head).</summary>
    public Tensor? LastHiddenState { get; init; }
    public Tensor? EncoderLastHiddenState { get; init; }
    /// <summary>Encoder-decoder models: the encoder's hidden states (<see cref="HiddenStates"/> are the decoder's).</summary>
    public IReadOnlyList<Tensor>? EncoderHiddenStates { get; init; }

    public void Dispose()
    {
        Logits.Dispose();
        LastHiddenState?.Dispose();
        EncoderLastHiddenState?.Dispose();
        if (HiddenStates is not null) foreach (var h in HiddenStates) h.Dispose();
        if (EncoderHiddenStates is not null) foreach (var h in EncoderHiddenStates) h.Dispose();
    }
}
