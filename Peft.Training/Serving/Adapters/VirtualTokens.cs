using Peft.Core;
using Peft.Core.Configs;
using Peft.Core.Models;
using Peft.Training.Models;
using Peft.Training.Nn;
using Peft.Training.Tuners;
using Peft.Training.Tuners.PrefixTuning;
using Peft.Training.Tuners.PromptLearning;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Serving.Adapters;

/// <summary>
/// A prompt-tuning, P-tuning or prefix-tuning adapter attached to the serving engine: its saved virtual tokens
/// (<c>prompt_embeddings</c>, which PEFT saves as the encoder's output) on the model's device. These methods change
/// only what a sequence starts with: prompt and P-tuning put the virtual tokens' embeddings in front of the prompt,
/// prefix tuning seeds the sequence's key/value cache with them. After its prefill such a sequence holds them in its
/// own cache, so it decodes in the shared running batch as a base row; no per-adapter batch is needed.
/// </summary>
internal sealed class VirtualTokens : IDisposable
{
    private VirtualTokens(PromptLearningConfig config, Tensor table)
    {
        Config = config;
        Table = table;
    }

    public PromptLearningConfig Config { get; }
    /// <summary>[num_virtual_tokens, token_dim] (prompt, P-tuning) or [num_virtual_tokens, 2·layers·kv_dim] (prefix).</summary>
    public Tensor Table { get; }
    public int Count => Config.NumVirtualTokens!.Value;

    /// <summary>The positions a sequence's virtual tokens take in front of it, from its config alone (0 for other methods).</summary>
    public static int CountOf(PeftConfig? config) => config is PromptLearningConfig p ? p.NumVirtualTokens ?? 0 : 0;

    /// <summary>Checks the adapter against the served model and copies its table to the model's device and dtype.</summary>
    public static VirtualTokens Attach(PretrainedModel model, PromptLearningConfig config, IReadOnlyDictionary<string, Tensor> weights, string source)
    {
        config.Validate();
        config.FillFromModel(model.Shape);
        config.Validate();
        if (config is PrefixTuningConfig) PrefixTuningTuner.CheckFits(model, config);
        else PrependedPromptTuner.CheckFits(model, config);
        const string key = "prompt_embeddings";
        if (!weights.TryGetValue(key, out var saved))
            throw new AdapterLoadException($"{source}: '{key}' is missing from the adapter's weights");
        long width = config is PrefixTuningConfig ? 2L * config.NumLayers!.Value * config.TokenDim!.Value : config.TokenDim!.Value;
        if (saved.dim() != 2 || saved.shape[0] < config.NumVirtualTokens || saved.shape[1] != width)
            throw new AdapterLoadException(
                $"{source}: '{key}' has shape [{string.Join(", ", saved.shape)}]; {config.PeftType} with {config.NumVirtualTokens} virtual tokens on this model needs [{config.NumVirtualTokens}, {width}]");
        using var scope = torch.NewDisposeScope();
        var table = saved.narrow(0, 0, config.NumVirtualTokens!.Value).to(model.DType, model.Device).clone();
        return new VirtualTokens(config, table.DetachFromDisposeScope());
    }

    /// <summary>
    /// The prefill of <paramref name="ids"/> [1, n] behind these virtual tokens, as PEFT runs it: the positions count
    /// the virtual tokens first (PEFT drops position_ids; the model then uses past length + index), and the mask
    /// covers them. Prefix tuning's keys/values go into <paramref name="cache"/>, which must be empty.
    /// </summary>
    public ForwardArgs PrefillArgs(PeftModel peft, Tensor ids, KvCache cache)
    {
        long n = ids.shape[1];
        var device = ids.device;
        var mask = torch.ones(1, Count + n, dtype: ScalarType.Int64, device: device);
        if (Config is PrefixTuningConfig)
        {
            PrefixTuningTuner.SeedCache(peft.BaseModel, Table, Config, cache, 1);
            var after = TensorRanges.Of(Count, Count + n, device).view(1, n);
            return new ForwardArgs { InputIds = ids, AttentionMask = mask, PositionIds = after, Cache = cache, LogitsToKeep = 1 };
        }
        Tensor embeds;
        // The prompt's own embeddings are the base model's: an adapter on embed_tokens belongs to other rows.
        using (peft.DisableAdapters()) embeds = peft.BaseModel.InputEmbeddings.forward(ids);
        var inputs = torch.cat([Table.to(embeds.dtype).unsqueeze(0), embeds], 1);
        var all = TensorRanges.Of(0, Count + n, device).view(1, Count + n);
        return new ForwardArgs { InputsEmbeds = inputs, AttentionMask = mask, PositionIds = all, Cache = cache, LogitsToKeep = 1 };
    }

    public void Dispose() => Table.Dispose();
}
