using Peft.Training.IO;
using Peft.Training.Models;
using static TorchSharp.torch;

namespace Peft.Cli.Support;

/// <summary>
/// The tensors of a forward input file: <c>input_ids</c>, optional <c>attention_mask</c> and, for encoder-decoder
/// models, <c>decoder_input_ids</c>. Other tensors are ignored (so an expected-outputs file can be reused as input).
/// Tensors are created in the caller's dispose scope.
/// </summary>
internal sealed class ModelInputs
{
    private ModelInputs(Tensor inputIds, Tensor? attentionMask, Tensor? decoderInputIds)
    {
        InputIds = inputIds;
        AttentionMask = attentionMask;
        DecoderInputIds = decoderInputIds;
    }

    public Tensor InputIds { get; }
    public Tensor? AttentionMask { get; }
    public Tensor? DecoderInputIds { get; }
    public long Rows => InputIds.shape[0];

    public static ModelInputs Read(string path)
    {
        if (!File.Exists(path)) throw new PeftUserException($"{path}: input file not found", UserErrorKind.NotFound);
        using var file = SafetensorsFile.Open(path);
        var ids = LoadIds(file, path, "input_ids") ?? throw new UsageException($"{path}: tensor 'input_ids' is missing");
        var mask = LoadIds(file, path, "attention_mask");
        if (mask is not null && !mask.shape.SequenceEqual(ids.shape))
            throw new UsageException($"{path}: 'attention_mask' has shape [{string.Join(", ", mask.shape)}] but 'input_ids' has [{string.Join(", ", ids.shape)}]");
        var decoder = LoadIds(file, path, "decoder_input_ids");
        if (decoder is not null && decoder.shape[0] != ids.shape[0])
            throw new UsageException($"{path}: 'decoder_input_ids' has {decoder.shape[0]} rows but 'input_ids' has {ids.shape[0]}");
        return new ModelInputs(ids, mask, decoder);
    }

    /// <summary>A 2-D integer tensor as int64, or null when absent.</summary>
    private static Tensor? LoadIds(SafetensorsFile file, string path, string key)
    {
        if (!file.Contains(key)) return null;
        var entry = file[key];
        if (entry.Shape.Length != 2 || entry.Shape[0] == 0 || entry.Shape[1] == 0)
            throw new UsageException($"{path}: '{key}' must be a non-empty [batch, seq] tensor, got shape [{string.Join(", ", entry.Shape)}]");
        var raw = file.Load(key); // in the caller's dispose scope, like the result
        if (raw.dtype is not (ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte))
            throw new UsageException($"{path}: '{key}' must hold integers, got {raw.dtype}");
        return raw.to(ScalarType.Int64);
    }

    /// <summary>Checks the ids against the model (vocabulary range, decoder inputs) and builds the forward arguments.</summary>
    public ForwardArgs ToForwardArgs(PretrainedModel model, string path)
    {
        CheckRange(InputIds, "input_ids", model.VocabSize, path);
        if (model.IsEncoderDecoder)
        {
            if (DecoderInputIds is null)
                throw new UsageException($"{path}: 'decoder_input_ids' is required for the encoder-decoder model_type '{model.ModelType}'");
            CheckRange(DecoderInputIds, "decoder_input_ids", model.VocabSize, path);
        }
        return new ForwardArgs
        {
            InputIds = InputIds,
            AttentionMask = AttentionMask,
            DecoderInputIds = model.IsEncoderDecoder ? DecoderInputIds : null,
        };
    }

    /// <summary>Checks <c>input_ids</c> against the model's vocabulary (generation needs nothing else).</summary>
    public void CheckInputIds(PretrainedModel model, string path) => CheckRange(InputIds, "input_ids", model.VocabSize, path);

    /// <summary>An out-of-range id would otherwise surface as an opaque native indexing error.</summary>
    private static void CheckRange(Tensor ids, string key, int vocab, string path)
    {
        long min = ids.min().item<long>(), max = ids.max().item<long>();
        if (min < 0 || max >= vocab)
            throw new UsageException($"{path}: '{key}' holds ids in [{min}, {max}] but the vocabulary has {vocab} entries");
    }
}
