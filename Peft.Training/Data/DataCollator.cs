using Peft.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Data;

/// <summary>A padded batch on a device. Disposing releases its tensors.</summary>
public sealed class Batch : IDisposable
{
    public required Tensor InputIds { get; init; }
    public required Tensor AttentionMask { get; init; }
    /// <summary>[batch, seq] token labels (-100 = ignored), or [batch] class ids for sequence classification.</summary>
    public required Tensor Labels { get; init; }
    /// <summary>Encoder-decoder models: labels shifted right behind the decoder start token.</summary>
    public Tensor? DecoderInputIds { get; init; }
    public Tensor? DecoderAttentionMask { get; init; }
    public int Size { get; init; }
    /// <summary>Real (non-pad) input tokens, for tokens/s.</summary>
    public long Tokens { get; init; }
    /// <summary>Positions that count in the loss (after the causal shift).</summary>
    public long LossItems { get; init; }

    public ForwardArgs ToForwardArgs() => new()
    {
        InputIds = InputIds,
        AttentionMask = AttentionMask,
        DecoderInputIds = DecoderInputIds,
        DecoderAttentionMask = DecoderAttentionMask,
    };

    public void Dispose()
    {
        InputIds.Dispose();
        AttentionMask.Dispose();
        Labels.Dispose();
        DecoderInputIds?.Dispose();
        DecoderAttentionMask?.Dispose();
    }
}

/// <summary>Pads examples on the right (ids with the pad id, mask 0, labels -100) into a <see cref="Batch"/>.</summary>
public sealed class DataCollator(TaskType task, long padTokenId, long decoderStartTokenId = 0)
{
    public TaskType Task { get; } = task;

    public Batch Collate(IReadOnlyList<Example> rows, Device? device = null)
    {
        if (rows.Count == 0) throw new ArgumentException("empty batch");
        int b = rows.Count, len = rows.Max(r => r.InputIds.Length);
        var ids = new long[b * len];
        var mask = new long[b * len];
        Array.Fill(ids, padTokenId);
        bool seqCls = Task == TaskType.SequenceClassification;
        bool seq2seq = Task == TaskType.Seq2SeqLM;
        int labelLen = seq2seq ? rows.Max(r => r.Labels.Length) : len;
        var labels = new long[seqCls ? b : b * labelLen];
        Array.Fill(labels, -100L);
        for (int i = 0; i < b; i++)
        {
            var r = rows[i];
            Array.Copy(r.InputIds, 0, ids, i * len, r.InputIds.Length);
            for (int j = 0; j < r.InputIds.Length; j++) mask[i * len + j] = r.AttentionMask?[j] ?? 1;
            if (seqCls) labels[i] = r.Labels[0];
            else Array.Copy(r.Labels, 0, labels, i * labelLen, r.Labels.Length);
        }
        Tensor? decoderIds = null, decoderMask = null;
        if (seq2seq)
        {
            // transformers' shift_tokens_right: [start, y0, ..., y_{n-2}], with -100 replaced by the pad id.
            var dec = new long[b * labelLen];
            var dmask = new long[b * labelLen];
            for (int i = 0; i < b; i++)
            {
                dec[i * labelLen] = decoderStartTokenId;
                for (int j = 1; j < labelLen; j++)
                {
                    long y = labels[i * labelLen + j - 1];
                    dec[i * labelLen + j] = y == -100 ? padTokenId : y;
                }
                for (int j = 0; j < rows[i].Labels.Length; j++) dmask[i * labelLen + j] = 1;
            }
            decoderIds = torch.tensor(dec, [b, labelLen], ScalarType.Int64, device);
            decoderMask = torch.tensor(dmask, [b, labelLen], ScalarType.Int64, device);
        }
        return new Batch
        {
            InputIds = torch.tensor(ids, [b, len], ScalarType.Int64, device),
            AttentionMask = torch.tensor(mask, [b, len], ScalarType.Int64, device),
            Labels = seqCls ? torch.tensor(labels, [b], ScalarType.Int64, device) : torch.tensor(labels, [b, labelLen], ScalarType.Int64, device),
            DecoderInputIds = decoderIds,
            DecoderAttentionMask = decoderMask,
            Size = b,
            Tokens = rows.Sum(r => r.Tokens),
            LossItems = rows.Sum(r => r.LossItems(Task)),
        };
    }
}
