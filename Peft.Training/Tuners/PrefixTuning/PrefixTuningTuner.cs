using Peft.Training.Models;
using Peft.Training.Tuners.PromptLearning;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.PrefixTuning;

public sealed class PrefixTuningMethod : IPeftMethod
{
    public string PeftType => "PREFIX_TUNING";
    public ITuner CreateTuner(PeftModel model) => new PrefixTuningTuner(model);
}

/// <summary>
/// Prefix tuning: the encoder output [T, 2·L·D] becomes per-layer key/value prefixes seeded into the
/// <see cref="KvCache"/> before the real tokens (Hugging Face's <c>past_key_values</c>): layer i key = block 2i,
/// value = block 2i+1 of the 2L blocks, each [T, D] viewed [T, H_kv, head_dim] → [H_kv, T, head_dim] and shared by every
/// batch row. The sequence itself is unchanged (no extra logits); real tokens sit at positions T, T+1, ...
/// </summary>
public sealed class PrefixTuningTuner(PeftModel owner) : PromptLearningTuner(owner)
{
    protected override string MethodName => "prefix tuning";

    protected override void CheckModel(PromptLearningConfig config) => CheckFits(Base, config);

    /// <summary>Throws <see cref="PeftConfigException"/> unless a (filled) prefix config fits the model's key/value cache.</summary>
    internal static void CheckFits(PretrainedModel model, PromptLearningConfig config)
    {
        // GPT-BigCode lays out PEFT's prefix differently again; refuse rather than guess.
        if (model.ModelType is "gpt_bigcode")
            throw new PeftUserException($"prefix tuning of '{model.ModelType}' models is not implemented yet");
        var c = (PrefixTuningConfig)config;
        int heads = c.NumAttentionHeads!.Value, dim = c.TokenDim!.Value;
        if (c.NumLayers != model.NumLayers)
            throw new PeftConfigException($"PrefixTuningConfig: 'num_layers' is {c.NumLayers} but the base model has {model.NumLayers} layers");
        if (heads != model.NumKeyValueHeads || dim != heads * model.HeadDim)
            throw new PeftConfigException(
                $"PrefixTuningConfig: token_dim {dim} / num_attention_heads {heads} do not match the model's key/value cache " +
                $"({model.NumKeyValueHeads} key/value heads × head_dim {model.HeadDim} = {model.NumKeyValueHeads * model.HeadDim})");
    }

    protected override VirtualTokenEncoder CreateEncoder(PromptLearningConfig config, Device device, Generator? gen) =>
        new PrefixEncoder((PrefixTuningConfig)config, device, gen);

    /// <summary>
    /// Builds the prefix itself when <see cref="ForwardArgs.Cache"/> is null (a private cache for this pass) or empty
    /// (first step of generation: the prefix stays in the caller's cache). A non-empty cache already holds it.
    /// </summary>
    public override ModelOutput Forward(ForwardArgs args, IReadOnlyList<string>? rowAdapterNames)
    {
        RejectRowAdapters(rowAdapterNames);
        if (!IsApplied) return Base.Forward(args);
        var config = ActiveConfig;
        int nvt = config.NumVirtualTokens!.Value;
        var (batch, length) = Shape(args);
        using var scope = torch.NewDisposeScope();
        KvCache? own = args.Cache is null ? new KvCache(Base.NumDecoderLayers) : null;
        var cache = args.Cache ?? own!;
        try
        {
            if (cache.IsEmpty) InjectPrefix(cache, batch, config);
            else if (cache.Length < nvt)
                throw new ArgumentException($"the key/value cache holds {cache.Length} positions, fewer than the {nvt} prefix tokens; start generation with an empty cache");
            if (Base.IsEncoderDecoder)
            {
                // Only the decoder's self-attention sees the prefix (PEFT resets the cross-attention cache): the
                // encoder mask stays as given, a decoder mask (if any) covers the prefix too.
                long decoderLength = args.DecoderInputIds?.shape[1] ?? 0;
                var decoderMask = WithVirtualMask(args.DecoderAttentionMask, cache.Length + decoderLength, nvt);
                var seq2seq = BaseArgs(args, args.InputIds, args.InputsEmbeds, args.AttentionMask, cache, args.TokenTypeIds);
                return MoveOut(Base.Forward(new ForwardArgs
                {
                    InputIds = seq2seq.InputIds, InputsEmbeds = seq2seq.InputsEmbeds, AttentionMask = seq2seq.AttentionMask,
                    Cache = cache, OutputHiddenStates = seq2seq.OutputHiddenStates, DecoderInputIds = args.DecoderInputIds,
                    DecoderAttentionMask = decoderMask, EncoderHiddenStates = args.EncoderHiddenStates,
                }));
            }
            var mask = WithVirtualMask(args.AttentionMask, cache.Length + length, nvt);
            var output = Base.Forward(BaseArgs(args, args.InputIds, args.InputsEmbeds, mask, cache, args.TokenTypeIds));
            return MoveOut(output);
        }
        finally
        {
            own?.Dispose();
        }
    }

    private void InjectPrefix(KvCache cache, long batch, PromptLearningConfig config) =>
        SeedCache(Base, ActiveEncoder.Output(), config, cache, batch);

    /// <summary>
    /// Seeds <paramref name="cache"/> with a prefix (the encoder output [T, 2·L·D], also what adapter_model.safetensors
    /// saves as prompt_embeddings), shared by <paramref name="batch"/> rows. The serving engine seeds a sequence's own
    /// cache this way from a saved adapter, without a tuner.
    /// </summary>
    internal static void SeedCache(PretrainedModel model, Tensor prefix, PromptLearningConfig config, KvCache cache, long batch)
    {
        int layers = config.NumLayers!.Value, heads = config.NumAttentionHeads!.Value;
        long t = config.NumVirtualTokens!.Value, headDim = config.TokenDim!.Value / heads;
        // PEFT casts the prefix to the base model's dtype; gradients still reach the (float32) encoder.
        var blocks = prefix.to(model.DType).view(t, 2 * layers, heads, headDim);
        bool bloom = model.ModelType == "bloom";
        for (int i = 0; i < model.NumDecoderLayers; i++)
        {
            Tensor key, value;
            if (model.IsEncoderDecoder)
            {
                // PEFT 0.10 doubles the 2L blocks to 4L and splits by 4 (self k, self v, cross k, cross v) per decoder
                // layer, so layer i's self-attention reads blocks 4i and 4i+1 modulo 2L.
                key = blocks.select(1, 4 * i % (2 * layers)).permute(1, 0, 2);
                value = blocks.select(1, (4 * i + 1) % (2 * layers)).permute(1, 0, 2);
            }
            else if (bloom)
            {
                // PEFT 0.10 + transformers 4.40 BLOOM: blocks 0..L-1 are keys, L..2L-1 values, and a key block's
                // [T, H, hd] memory is read as [H, hd, T] (a reshape, not a transpose) — reproduce that exactly.
                key = blocks.select(1, i).contiguous().view(heads, headDim, t).transpose(1, 2);
                value = blocks.select(1, layers + i).permute(1, 0, 2);
            }
            else
            {
                key = blocks.select(1, 2 * i).permute(1, 0, 2);
                value = blocks.select(1, 2 * i + 1).permute(1, 0, 2);
            }
            cache.Set(i, key.unsqueeze(0).expand(batch, -1, -1, -1), value.unsqueeze(0).expand(batch, -1, -1, -1));
        }
    }
}
