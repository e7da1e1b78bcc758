using Peft.Training.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Models.T5;

/// <summary>
/// transformers' <c>T5ForConditionalGeneration</c> / <c>MT5ForConditionalGeneration</c>: <c>shared</c> word embeddings
/// (used by both stacks; <c>encoder.embed_tokens</c> is the same module, so it has no parameter name of its own, as in
/// PyTorch's de-duplicated named_parameters), <c>encoder.*</c>, <c>decoder.*</c> and <c>lm_head</c> (tied to
/// <c>shared</c> when tie_word_embeddings, the T5 default; mT5 has its own).
/// </summary>
public sealed class T5ForConditionalGeneration : PretrainedModel
{
#pragma warning disable IDE1006
    private readonly EmbeddingLayer shared;
    private readonly T5Stack encoder, decoder;
    private readonly LinearLayer lm_head;
#pragma warning restore IDE1006

    public T5Config Typed { get; }

    public T5ForConditionalGeneration(ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(T5ForConditionalGeneration), config, TaskType.Seq2SeqLM, device, dtype)
    {
        Typed = T5Config.From(config);
        shared = new EmbeddingLayer(Typed.VocabSize, Typed.DModel, device, dtype);
        encoder = new T5Stack(Typed, false, Dropout, device, dtype);
        decoder = new T5Stack(Typed, true, Dropout, device, dtype);
        lm_head = Typed.TieWordEmbeddings
            ? new LinearLayer(shared.weight)
            : new LinearLayer(Typed.DModel, Typed.VocabSize, false, device, dtype);
        RegisterComponents();
    }

    /// <summary>Encoder layers (what PEFT reads as num_layers for T5).</summary>
    public override int NumLayers => Typed.NumLayers;
    public override int NumDecoderLayers => Typed.NumDecoderLayers;
    public override int HiddenSize => Typed.DModel;
    public override int NumAttentionHeads => Typed.NumHeads;
    public override int NumKeyValueHeads => Typed.NumHeads;
    public override int HeadDim => Typed.DKv;
    public override int VocabSize => Typed.VocabSize;
    public override bool IsEncoderDecoder => true;
    public override EmbeddingLayer InputEmbeddings => shared;
    public override IReadOnlyCollection<string> TiedParameterNames =>
        Typed.TieWordEmbeddings ? ["lm_head.weight"] : [];

    /// <summary>
    /// Encoder (skipped when <see cref="ForwardArgs.EncoderHiddenStates"/> is given) then decoder over
    /// <see cref="ForwardArgs.DecoderInputIds"/>. <see cref="ForwardArgs.AttentionMask"/> is the encoder's padding mask
    /// (also applied to cross-attention); <see cref="ForwardArgs.Cache"/> holds the decoder self-attention past and,
    /// in its companion, the cross-attention keys/values. Position ids are not used (relative position buckets).
    /// </summary>
    public override ModelOutput Forward(ForwardArgs args)
    {
        var decoderIds = args.DecoderInputIds
            ?? throw new ArgumentException("DecoderInputIds is required for T5 (start them with decoder_start_token_id)");
        using var scope = torch.NewDisposeScope();
        Tensor encoded;
        List<Tensor>? encoderStates = null;
        if (args.EncoderHiddenStates is { } given)
        {
            encoded = given.alias();
        }
        else
        {
            var embeds = args.InputsEmbeds ?? shared.forward(args.InputIds ?? throw new ArgumentException("InputIds, InputsEmbeds or EncoderHiddenStates is required"));
            (encoded, encoderStates) = encoder.Encode(embeds, args.AttentionMask, args.OutputHiddenStates);
        }
        if (args.AttentionMask is { } m && (m.shape[0] != encoded.shape[0] || m.shape[1] != encoded.shape[1]))
            throw new ArgumentException($"attention mask has shape [{string.Join(", ", m.shape)}] but the encoder output is [{encoded.shape[0]}, {encoded.shape[1]}]");
        var (hidden, decoderStates) = decoder.Decode(shared.forward(decoderIds), args.DecoderAttentionMask, args.Cache, encoded,
            args.AttentionMask, args.OutputHiddenStates);
        // With tied embeddings the output is rescaled by d_model^-0.5 before the shared projection (Mesh TensorFlow).
        // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
        using Scalar tiedScale = Math.Pow(Typed.DModel, -0.5);
        var projected = Typed.TieWordEmbeddings ? hidden * tiedScale : hidden;
        var logits = lm_head.forward(projected).to(ScalarType.Float32);
        return new ModelOutput
        {
            Logits = logits.MoveToOuterDisposeScope(),
            LastHiddenState = hidden.MoveToOuterDisposeScope(),
            EncoderLastHiddenState = encoded.MoveToOuterDisposeScope(),
            HiddenStates = decoderStates?.Select(t => t.MoveToOuterDisposeScope()).ToList(),
            EncoderHiddenStates = encoderStates?.Select(t => t.MoveToOuterDisposeScope()).ToList(),
        };
    }

    /// <summary>
    /// Decoder inputs for teacher forcing from labels (transformers' <c>_shift_right</c>): decoder_start_token_id, then
    /// the labels without their last token, with the loss-ignore id -100 replaced by pad_token_id.
    /// </summary>
    public Tensor ShiftRight(Tensor labels)
    {
        long start = Config.TryGetInt("decoder_start_token_id") ?? throw Config.Error("decoder_start_token_id", "is missing (needed to build decoder inputs)");
        long pad = Config.TryGetInt("pad_token_id") ?? 0;   // T5Config's default
        using var scope = torch.NewDisposeScope();
        long len = labels.shape[^1];
        using Scalar startId = start, ignoreId = -100, padId = pad;
        var first = torch.full([.. labels.shape[..^1], 1], startId, labels.dtype, labels.device);
        var shifted = torch.cat([first, labels.narrow(-1, 0, len - 1)], -1);
        return shifted.masked_fill(shifted.eq(ignoreId), padId).MoveToOuterDisposeScope();
    }

    /// <summary>transformers' T5 initialisation: fan-in scaled normals per projection, unit norms (× initializer_factor).</summary>
    public override void InitWeights(long seed)
    {
        using var noGrad = torch.no_grad();
        var gen = new Generator((ulong)seed, Device);
        double f = Typed.InitializerFactor, dModel = Typed.DModel;
        using Scalar normWeight = f;
        foreach (var (name, p) in UniqueNamedParameters())
        {
            var parts = name.Split('.');
            string owner = parts.Length > 1 ? parts[^2] : "";
            double? std = owner switch
            {
                "shared" or "lm_head" => f,
                "q" => f * Math.Pow(dModel * Typed.DKv, -0.5),
                "k" or "v" or "relative_attention_bias" or "wi" or "wi_0" or "wi_1" => f * Math.Pow(dModel, -0.5),
                "o" => f * Math.Pow(Typed.InnerDim, -0.5),
                "wo" => f * Math.Pow(Typed.DFf, -0.5),
                _ => null,
            };
            if (std is double s) p.normal_(0, s, gen);
            else if (owner is "layer_norm" or "final_layer_norm") p.fill_(normWeight);
        }
    }
}
