using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Generation;

/// <summary>
/// transformers' <c>generate()</c> (4.40 semantics): KV cache, greedy / sampling / beam search, eos stopping with padding
/// of finished rows. Decoder-only causal LMs: prefill with the whole prompt then one token per step, mask-derived
/// positions (left padding). Encoder-decoder models (<see cref="PretrainedModel.IsEncoderDecoder"/>): the input is
/// encoded once, the decoder starts from decoder_start_token_id and the result holds the decoder sequences.
/// </summary>
public static class TextGenerator
{
    public static GenerationResult Generate(PretrainedModel model, Tensor inputIds, Tensor? attentionMask = null,
        GenerationOptions? options = null, CancellationToken ct = default) =>
        Generate(new ModelRunner(model), inputIds, attentionMask, options ?? new GenerationOptions(), ct);

    public static GenerationResult Generate(PeftModel model, Tensor inputIds, Tensor? attentionMask = null,
        GenerationOptions? options = null, CancellationToken ct = default) =>
        Generate(new PeftModelRunner(model), inputIds, attentionMask, options ?? new GenerationOptions(), ct);

    /// <param name="inputIds">int64 [batch, prompt]; pad on the LEFT when prompts differ in length (encoder inputs: either side).</param>
    /// <param name="attentionMask">[batch, prompt], 0 = padding; null = derived from the pad id like transformers.</param>
    public static GenerationResult Generate(ICausalLmRunner runner, Tensor inputIds, Tensor? attentionMask,
        GenerationOptions options, CancellationToken ct = default)
    {
        var model = runner.Model;
        bool supported = model.IsEncoderDecoder ? model.Task == TaskType.Seq2SeqLM : model.Task == TaskType.CausalLM;
        if (!supported)
            throw new PeftUserException($"generation needs a causal LM or a seq2seq LM; this model is {model.ModelType} ({model.Task})");
        if (inputIds.dim() != 2 || inputIds.shape[1] == 0)
            throw new ArgumentException($"inputIds must be [batch, prompt] with a non-empty prompt, got [{string.Join(", ", inputIds.shape)}]");
        if (attentionMask is not null && !attentionMask.shape.SequenceEqual(inputIds.shape))
            throw new ArgumentException($"attentionMask shape [{string.Join(", ", attentionMask.shape)}] differs from inputIds [{string.Join(", ", inputIds.shape)}]");
        var settings = GenerationSettings.Resolve(options, options.Defaults ?? GenerationConfig.ForModel(model), inputIds.shape[0]);

        // Generation never drops out, even on a model left in training mode (transformers would, if not set to eval).
        using var evalMode = new EvalMode(model);
        using var noGrad = torch.no_grad();
        using var outer = torch.NewDisposeScope();
        // alias(): never dispose the caller's tensors, whether or not .to() had to copy.
        var ids = inputIds.to(ScalarType.Int64, model.Device).alias();
        var mask = attentionMask is not null
            ? attentionMask.to(ScalarType.Int64, model.Device).alias()
            : DefaultAttentionMask(ids, settings);
        var result = settings.NumBeams > 1
            ? BeamSearch.Run(runner, ids, mask, settings, ct)
            : Decode(runner, ids, mask, settings, ct);
        result.Sequences.MoveToOuterDisposeScope();
        if (result.Scores is not null) foreach (var s in result.Scores) s.MoveToOuterDisposeScope();
        return result;
    }

    /// <summary>Puts a module in eval mode for a scope and restores training mode after it.</summary>
    private readonly struct EvalMode : IDisposable
    {
        private readonly nn.Module _module;
        private readonly bool _wasTraining;

        public EvalMode(nn.Module module)
        {
            _module = module;
            _wasTraining = module.training;
            if (_wasTraining) module.eval();
        }

        public void Dispose()
        {
            if (_wasTraining) _module.train();
        }
    }

    /// <summary>transformers: mask out pad tokens if the pad id occurs in the prompt and is not an eos id, else all ones.</summary>
    private static Tensor DefaultAttentionMask(Tensor ids, GenerationSettings s)
    {
        if (s.PadTokenId is long pad && !s.EosTokenIds.Contains(pad))
        {
            // Scalars in locals: TorchSharp frees an implicit temporary from its finalizer, possibly mid-call.
            using Scalar padId = pad;
            using var hasPad = ids.eq(padId).any();
            if (hasPad.item<bool>()) return ids.ne(padId).to(ScalarType.Int64);
        }
        return torch.ones_like(ids);
    }

    /// <summary>Prefill positions: cumsum(mask) - 1, with padded slots set to 1 (transformers' prepare_inputs_for_generation).</summary>
    internal static Tensor PromptPositions(Tensor mask)
    {
        using var scope = torch.NewDisposeScope();
        using Scalar zero = 0, one = 1;
        var pos = mask.cumsum(-1) - one;
        return pos.masked_fill(mask.eq(zero), one).MoveToOuterDisposeScope();
    }

    /// <summary>Grows the mask by a column of ones; returns it with the new token's position (its count of real tokens - 1).</summary>
    internal static (Tensor Mask, Tensor Positions) Advance(Tensor mask)
    {
        using var scope = torch.NewDisposeScope();
        var grown = torch.cat([mask, torch.ones(mask.shape[0], 1, dtype: mask.dtype, device: mask.device)], 1);
        using Scalar one = 1;
        var pos = grown.sum(-1, keepdim: true) - one;
        return (grown.MoveToOuterDisposeScope(), pos.MoveToOuterDisposeScope());
    }

    /// <summary>Greedy search or multinomial sampling (num_beams = 1).</summary>
    private static GenerationResult Decode(ICausalLmRunner runner, Tensor ids, Tensor mask, GenerationSettings s, CancellationToken ct)
    {
        var model = runner.Model;
        using var stepper = DecodeSteppers.Create(runner, ids, mask, s, 1);
        int batch = (int)ids.shape[0];
        using var generator = s.DoSample && s.Seed is long seed ? new Generator((ulong)seed, model.Device) : null;
        var finished = new bool[batch];
        var counts = new int[batch];
        var columns = new List<Tensor> { stepper.Prompt };
        var scores = s.OutputScores ? new List<Tensor>() : null;
        Tensor? last = null;
        for (int step = 0; step < s.MaxNewTokens; step++)
        {
            ct.ThrowIfCancellationRequested();
            using var scope = torch.NewDisposeScope();
            var logits = stepper.Next(last);
            var processed = s.DoSample ? LogitsWarpers.Apply(logits, s.Temperature, s.TopK, s.TopP) : logits;
            var chosen = s.DoSample
                ? torch.multinomial(processed.softmax(-1), 1, false, generator).squeeze(1)
                : processed.argmax(-1);
            var tokens = chosen.to(ScalarType.Int64).cpu().data<long>().ToArray();
            for (int r = 0; r < batch; r++)
            {
                // transformers: next = next * unfinished + pad * (1 - unfinished); then eos marks the row finished.
                if (finished[r]) { tokens[r] = s.PadTokenId!.Value; continue; }
                counts[r]++;
                if (s.EosTokenIds.Contains(tokens[r])) finished[r] = true;
            }
            var column = torch.tensor(tokens, device: model.Device).view(batch, 1);
            columns.Add(column.MoveToOuterDisposeScope());
            scores?.Add(processed.MoveToOuterDisposeScope());
            s.OnStep?.Invoke(new GenerationStep(step, tokens, (bool[])finished.Clone()));
            if (finished.All(f => f) || step == s.MaxNewTokens - 1) break;
            last = column;
        }
        return new GenerationResult
        {
            Sequences = torch.cat(columns, 1),
            PromptLength = stepper.Prompt.shape[1],
            NewTokenCounts = counts,
            Scores = scores,
        };
    }
}
