using Peft.Training.Models;
using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Generation;

/// <summary>
/// Feeds the model during one decoding loop, so that greedy/sampling and beam search are written once for decoder-only
/// and encoder-decoder models. The first call runs the prompt; later calls one new token per row. State tensors are
/// detached from dispose scopes and owned here.
/// </summary>
internal interface IDecodeStepper : IDisposable
{
    /// <summary>int64 [rows, prompt]: what every output sequence starts with (the prompt, or the decoder start token).</summary>
    Tensor Prompt { get; }

    /// <summary>Float32 next-token logits [rows, vocab]; <paramref name="tokens"/> = last step's tokens, null at first.</summary>
    Tensor Next(Tensor? tokens);

    /// <summary>Beam search: row r continues from row <paramref name="rows"/>[r].</summary>
    void Reorder(Tensor rows);
}

internal static class DecodeSteppers
{
    /// <summary>A stepper for <paramref name="beams"/> rows per input row (<paramref name="ids"/> and mask: [batch, prompt]).</summary>
    public static IDecodeStepper Create(ICausalLmRunner runner, Tensor ids, Tensor mask, GenerationSettings s, int beams) =>
        runner.Model.IsEncoderDecoder
            ? new Seq2SeqStepper(runner, ids, mask, s.AdapterNames, beams,
                s.DecoderStartTokenId ?? throw new ArgumentException("decoder_start_token_id is not set (config.json, generation_config.json or GenerationOptions.DecoderStartTokenId)"))
            : new CausalStepper(runner, ids, mask, s.AdapterNames, beams);

    internal static IReadOnlyList<string>? Repeat(IReadOnlyList<string>? names, int times) =>
        times == 1 ? names : names?.SelectMany(n => Enumerable.Repeat(n, times)).ToArray();

    /// <summary>Replaces a stepper-owned tensor: keeps the new one out of dispose scopes, disposes the old one.</summary>
    internal static void Swap(ref Tensor field, Tensor value)
    {
        var old = field;
        field = value.DetachFromDisposeScope();
        if (!ReferenceEquals(old, value)) old.Dispose();
    }
}

/// <summary>Decoder-only: prefill with the (beam-repeated) prompt, then one token per step with mask-derived positions.</summary>
internal sealed class CausalStepper : IDecodeStepper
{
    private readonly ICausalLmRunner _runner;
    private readonly IReadOnlyList<string>? _names;
    private readonly KvCache _cache;
    private Tensor _mask, _positions;

    public CausalStepper(ICausalLmRunner runner, Tensor ids, Tensor mask, IReadOnlyList<string>? names, int beams)
    {
        _runner = runner;
        _names = DecodeSteppers.Repeat(names, beams);
        Prompt = beams == 1 ? ids : ids.repeat_interleave(beams, 0);
        _mask = (beams == 1 ? mask.alias() : mask.repeat_interleave(beams, 0)).DetachFromDisposeScope();
        _positions = TextGenerator.PromptPositions(_mask).DetachFromDisposeScope();
        _cache = new KvCache(runner.Model.NumLayers);
    }

    public Tensor Prompt { get; }

    public Tensor Next(Tensor? tokens)
    {
        if (tokens is not null)
        {
            var (mask, positions) = TextGenerator.Advance(_mask);
            DecodeSteppers.Swap(ref _mask, mask);
            DecodeSteppers.Swap(ref _positions, positions);
        }
        var input = tokens?.view(_mask.shape[0], 1) ?? Prompt;
        using var output = _runner.Forward(new ForwardArgs { InputIds = input, AttentionMask = _mask, PositionIds = _positions, Cache = _cache, LogitsToKeep = 1 }, _names);
        return output.Logits.select(1, -1).clone();   // clone: don't keep the whole prefill logits alive
    }

    public void Reorder(Tensor rows) => _cache.IndexSelect(rows);

    public void Dispose()
    {
        _cache.Dispose();
        _mask.Dispose();
        _positions.Dispose();
    }
}

/// <summary>
/// Encoder-decoder: the first step runs the encoder and the decoder start token on the original batch (so the encoder
/// and its mixed-batch adapter names are not repeated per beam, as in transformers + PEFT), then repeats the encoder
/// output, its mask and the caches per beam; later steps feed the encoder output back with one decoder token per row.
/// </summary>
internal sealed class Seq2SeqStepper : IDecodeStepper
{
    private readonly ICausalLmRunner _runner;
    private readonly IReadOnlyList<string>? _names, _beamNames;
    private readonly int _beams;
    private readonly long _start;
    private readonly KvCache _cache;
    private readonly Tensor _encoderIds;
    private Tensor _encoderMask;
    private Tensor? _encoded;

    public Seq2SeqStepper(ICausalLmRunner runner, Tensor ids, Tensor mask, IReadOnlyList<string>? names, int beams, long decoderStart)
    {
        _runner = runner;
        _names = names;
        _beamNames = DecodeSteppers.Repeat(names, beams);
        _beams = beams;
        _start = decoderStart;
        _encoderIds = ids;
        _encoderMask = mask.alias().DetachFromDisposeScope();
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar start = decoderStart;
        Prompt = torch.full(ids.shape[0] * beams, 1, start, ScalarType.Int64, runner.Model.Device);
        _cache = new KvCache(runner.Model.NumDecoderLayers);
    }

    public Tensor Prompt { get; }

    public Tensor Next(Tensor? tokens)
    {
        if (_encoded is null) return Start();
        using var output = _runner.Forward(new ForwardArgs
        {
            EncoderHiddenStates = _encoded,
            AttentionMask = _encoderMask,
            DecoderInputIds = (tokens ?? throw new ArgumentException("tokens are required after the first step")).view(Prompt.shape[0], 1),
            Cache = _cache,
        }, _beamNames);
        return output.Logits.select(1, -1).clone();
    }

    private Tensor Start()
    {
        long batch = _encoderIds.shape[0];
        Tensor logits;
        using Scalar start = _start;
        using (var first = torch.full(batch, 1, start, ScalarType.Int64, _encoderIds.device))
        using (var output = _runner.Forward(new ForwardArgs
        {
            InputIds = _encoderIds,
            AttentionMask = _encoderMask,
            DecoderInputIds = first,
            Cache = _cache,
        }, _names))
        {
            logits = output.Logits.select(1, -1).clone();
            _encoded = (output.EncoderLastHiddenState ?? throw new InvalidOperationException("the model returned no encoder output"))
                .alias().DetachFromDisposeScope();
        }
        if (_beams == 1) return logits;
        using var rows = TensorRanges.Of(0, batch, _encoderIds.device).repeat_interleave(_beams);
        _cache.IndexSelect(rows);
        var encoded = _encoded;
        DecodeSteppers.Swap(ref encoded, encoded.index_select(0, rows));
        _encoded = encoded;
        DecodeSteppers.Swap(ref _encoderMask, _encoderMask.index_select(0, rows));
        return logits.index_select(0, rows);
    }

    /// <summary>Beams only move within their input row, whose encoder output is shared, so only the caches move.</summary>
    public void Reorder(Tensor rows) => _cache.IndexSelect(rows);

    public void Dispose()
    {
        _cache.Dispose();
        _encoderMask.Dispose();
        _encoded?.Dispose();
    }
}
