using TorchSharp;

namespace Peft.Training.Tokenization;

/// <summary>Which end of a sequence receives pad tokens (transformers' <c>padding_side</c>).</summary>
public enum PaddingSide { Right, Left }

/// <summary>A padded batch: rectangular <c>[B][L]</c> ids and a mask with 0 on pad positions.</summary>
public sealed record BatchEncoding(long[][] InputIds, long[][] AttentionMask)
{
    public int BatchSize => InputIds.Length;
    public int SequenceLength => InputIds.Length == 0 ? 0 : InputIds[0].Length;

    /// <summary>int64 tensor of shape [B, L].</summary>
    public torch.Tensor InputIdsTensor(torch.Device? device = null) => ToTensor(InputIds, device);

    /// <summary>int64 tensor of shape [B, L].</summary>
    public torch.Tensor AttentionMaskTensor(torch.Device? device = null) => ToTensor(AttentionMask, device);

    private static torch.Tensor ToTensor(long[][] rows, torch.Device? device)
    {
        int b = rows.Length, l = b == 0 ? 0 : rows[0].Length;
        var flat = new long[b * l];
        for (int i = 0; i < b; i++)
        {
            if (rows[i].Length != l) throw new InvalidOperationException("BatchEncoding rows must all have the same length.");
            Array.Copy(rows[i], 0, flat, i * l, l);
        }
        return torch.tensor(flat, new long[] { b, l }, dtype: torch.int64, device: device);
    }
}

/// <summary>
/// Text tokenizer with Hugging Face transformers semantics (fast tokenizers loaded from tokenizer.json).
/// </summary>
public interface ITextTokenizer : IDisposable
{
    /// <summary>Number of distinct tokens, including added tokens (transformers' <c>len(tokenizer)</c>).</summary>
    int VocabSize { get; }

    int? BosTokenId { get; }
    int? EosTokenId { get; }
    int? PadTokenId { get; }
    int? UnkTokenId { get; }
    string? BosToken { get; }
    string? EosToken { get; }
    string? UnkToken { get; }

    /// <summary>
    /// Pad token; null when the model has none (GPT-2, Llama). Set it (commonly to <see cref="EosToken"/>) before
    /// padding a batch; the token must already be in the vocabulary.
    /// </summary>
    string? PadToken { get; set; }

    /// <summary>Default from tokenizer_config.json "padding_side", else Right.</summary>
    PaddingSide PaddingSide { get; set; }

    /// <summary>Encodes one text. Special tokens written in the text (e.g. "&lt;s&gt;") are always matched.</summary>
    IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true);

    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false);

    /// <summary>
    /// Encodes and pads to the longest sequence of the batch (rounded up to a multiple of 8 when asked).
    /// With <paramref name="truncation"/>, sequences are cut to <paramref name="maxLength"/> (default: the
    /// model_max_length of tokenizer_config.json) keeping the start and any special tokens the post-processor adds.
    /// Without truncation, <paramref name="maxLength"/> is ignored, as in transformers with padding="longest".
    /// Throws <see cref="InvalidOperationException"/> when padding is requested (more than one text, or
    /// <paramref name="padToMultipleOf8"/>) and the tokenizer has no pad token.
    /// </summary>
    BatchEncoding EncodeBatch(IReadOnlyList<string> texts, bool addSpecialTokens = true, int? maxLength = null,
        bool truncation = false, bool padToMultipleOf8 = false);

    int? TokenToId(string token);
    string? IdToToken(int id);

    /// <summary>Raw jinja chat template (tokenizer_config.json "chat_template" or chat_template.jinja), if any.</summary>
    string? ChatTemplate { get; }
}
