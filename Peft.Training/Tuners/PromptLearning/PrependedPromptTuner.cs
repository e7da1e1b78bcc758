using Peft.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.PromptLearning;

/// <summary>
/// Shared forward of prompt tuning and P-tuning: the encoded virtual tokens are prepended to the input embeddings
/// (the word embeddings of <c>input_ids</c>) and the mask gets ones in front. Logits therefore include the virtual
/// positions, and a causal-LM trainer must prepend that many -100 labels (<see cref="VirtualTokensPrepended"/>).
/// For encoder-decoder models only the first num_virtual_tokens rows go in front of the encoder input.
/// </summary>
public abstract class PrependedPromptTuner(PeftModel owner) : PromptLearningTuner(owner), IVirtualTokenTuner
{
    /// <summary>Virtual positions in front of the logits / labels (0 when disabled, or for seq2seq and classification heads).</summary>
    public int VirtualTokensPrepended =>
        IsApplied && Base.Task is TaskType.CausalLM or TaskType.TokenClassification ? ActiveConfig.NumVirtualTokens!.Value : 0;

    protected override void CheckModel(PromptLearningConfig config) => CheckFits(Base, config);

    /// <summary>Throws <see cref="PeftConfigException"/> unless the virtual tokens have the word embeddings' width.</summary>
    internal static void CheckFits(PretrainedModel model, PromptLearningConfig config)
    {
        long dim = model.InputEmbeddings.EmbeddingDim;
        if (config.TokenDim != dim)
            throw new PeftConfigException($"{config.GetType().Name}: 'token_dim' is {config.TokenDim} but the model's word embeddings have {dim} dimensions");
    }

    /// <summary>
    /// Prepends the prompt when the sequence starts here (no cache, an empty cache, or an encoder pass). Later
    /// generation steps find the virtual tokens in the cache and only need the mask extended.
    /// </summary>
    public override ModelOutput Forward(ForwardArgs args, IReadOnlyList<string>? rowAdapterNames)
    {
        RejectRowAdapters(rowAdapterNames);
        if (!IsApplied) return Base.Forward(args);
        int nvt = ActiveConfig.NumVirtualTokens!.Value;
        var (batch, length) = Shape(args);
        long past = Base.IsEncoderDecoder ? 0 : args.Cache?.Length ?? 0;
        bool startsHere = Base.IsEncoderDecoder ? args.EncoderHiddenStates is null : past == 0;
        using var scope = torch.NewDisposeScope();
        if (!startsHere)
        {
            var stepMask = WithVirtualMask(args.AttentionMask, past + length, nvt);
            return MoveOut(Base.Forward(BaseArgs(args, args.InputIds, args.InputsEmbeds, stepMask, args.Cache, null)));
        }
        var embeds = args.InputsEmbeds ?? Base.InputEmbeddings.forward(args.InputIds!);
        var prompts = ActiveEncoder.Output().narrow(0, 0, nvt).to(embeds.dtype).unsqueeze(0).expand(batch, -1, -1);
        var inputs = torch.cat([prompts, embeds], 1);
        var mask = WithVirtualMask(args.AttentionMask, past + nvt + length, nvt);
        // Classification heads keep token types aligned: zeros for the virtual tokens (PEFT's seq-cls path).
        var types = args.TokenTypeIds is { } tt ? torch.cat([torch.zeros([batch, nvt], tt.dtype, tt.device), tt], 1) : null;
        return MoveOut(Base.Forward(BaseArgs(args, null, inputs, mask, args.Cache, types)));
    }
}
