using Peft.Core;
using Peft.Training.Models;
using Peft.Training.Serving.Adapters;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Serving;

/// <summary>One input's class probabilities, in label order.</summary>
public sealed record ClassScores(IReadOnlyList<string> Labels, float[] Probabilities, float[] Logits);

/// <summary>
/// Serves an encoder base (BERT family: MiniLM, a sequence-classification model) for <c>/v1/classify</c> and
/// <c>/v1/embeddings</c>. There is no decoding loop to batch into, so each call runs its inputs one forward pass each
/// (no padding, so every input gets exactly what it gets alone) while holding the engine's lock: the model, its
/// attached adapters and the device tier are only touched under it. Adapters come from the same kind of
/// <see cref="AdapterCache"/> as the generation engine (disk reads happen before the lock is taken).
/// </summary>
public sealed class EncoderEngine : IDisposable
{
    private readonly PeftModel _peft;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly int _maxLength;

    public EncoderEngine(PretrainedModel model, AdapterCache adapters, ServingMetrics? metrics = null)
    {
        if (model.IsEncoderDecoder || model.Task is TaskType.CausalLM or TaskType.Seq2SeqLM)
            throw new PeftUserException($"an encoder engine needs an encoder-only model (BERT family); this model is {model.ModelType} ({model.Task})", UserErrorKind.Invalid);
        model.eval();
        _peft = PeftModel.ForServing(model, "LORA");
        Adapters = adapters;
        Metrics = metrics;
        _maxLength = model.Config.TryGetInt("max_position_embeddings") ?? 512;
        Labels = LabelsOf(model);
    }

    public AdapterCache Adapters { get; }
    public ServingMetrics? Metrics { get; }
    public PretrainedModel Model => _peft.BaseModel;
    /// <summary>Label names from config.json's id2label (LABEL_i where missing); empty when the model has no classifier head.</summary>
    public IReadOnlyList<string> Labels { get; }
    public bool CanClassify => Model.Task == TaskType.SequenceClassification;

    private static List<string> LabelsOf(PretrainedModel model)
    {
        if (model.Task != TaskType.SequenceClassification) return [];
        var id2label = model.Config.GetObject("id2label");
        int n = model.Config.TryGetInt("num_labels") ?? id2label?.Count ?? 2;
        return Enumerable.Range(0, n)
            .Select(i => id2label?[i.ToString(System.Globalization.CultureInfo.InvariantCulture)]?.GetValue<string>() ?? $"LABEL_{i}")
            .ToList();
    }

    /// <summary>Label probabilities (softmax of the head's logits) for each input, with the leased adapter's head or the base's.</summary>
    public async Task<IReadOnlyList<ClassScores>> ClassifyAsync(IReadOnlyList<IReadOnlyList<int>> inputs, AdapterLease? adapter, CancellationToken ct)
    {
        if (!CanClassify)
            throw new PeftUserException($"this base model is a {Model.Task} model without a classification head; classify needs a sequence-classification model", UserErrorKind.Invalid);
        if (adapter is { Entry.Config.TaskType: { } task } && task != TaskType.SequenceClassification)
            throw new PeftUserException($"adapter {adapter.Entry.Key} is a {task.ToPeftString()} adapter; classify needs a SEQ_CLS adapter", UserErrorKind.Invalid);
        var rows = await RunAsync(inputs, adapter, ct, (output, _) => output.Logits.select(0, 0).to(ScalarType.Float32).cpu());
        return rows.Select(l =>
        {
            using var t = torch.tensor(l);
            return new ClassScores(Labels, t.softmax(0).data<float>().ToArray(), l);
        }).ToList();
    }

    /// <summary>
    /// One vector per input: the mean of the last hidden state over the input's tokens, L2-normalised (the pooling
    /// sentence-transformers uses for MiniLM), with the leased adapter or the base alone.
    /// </summary>
    public Task<IReadOnlyList<float[]>> EmbedAsync(IReadOnlyList<IReadOnlyList<int>> inputs, AdapterLease? adapter, CancellationToken ct) =>
        RunAsync(inputs, adapter, ct, (output, _) =>
        {
            var hidden = output.LastHiddenState ?? output.HiddenStates?[^1]
                ?? throw new InvalidOperationException($"{Model.ModelType} returned no hidden states");
            var mean = hidden.select(0, 0).to(ScalarType.Float32).mean([0]);
            return torch.nn.functional.normalize(mean, p: 2, dim: 0).cpu();
        });

    private async Task<IReadOnlyList<float[]>> RunAsync(IReadOnlyList<IReadOnlyList<int>> inputs, AdapterLease? adapter, CancellationToken ct,
        Func<ModelOutput, int, Tensor> read)
    {
        if (inputs.Count == 0) throw new PeftUserException("'input' is empty", UserErrorKind.BadRequest);
        var vocab = Model.Config.TryGetInt("vocab_size") ?? int.MaxValue;
        for (int i = 0; i < inputs.Count; i++)
        {
            if (inputs[i].Count == 0) throw new PeftUserException($"'input[{i}]' has no tokens", UserErrorKind.Invalid);
            if (inputs[i].Count > _maxLength)
                throw new PeftUserException($"'input[{i}]' has {inputs[i].Count} tokens; this model takes at most {_maxLength}", UserErrorKind.Invalid);
            if (inputs[i].Any(t => t < 0 || t >= vocab))
                throw new PeftUserException($"'input[{i}]' holds a token id outside this model's vocabulary (0..{vocab - 1})", UserErrorKind.Invalid);
        }
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // Tensor work on the pool, not on the request's thread; the lock keeps it to one call at a time.
            return await Task.Run(() =>
            {
                using var noGrad = torch.no_grad();
                if (adapter is not null) Adapters.Attach(adapter.Entry, _peft);
                string row = adapter?.Entry.ModelName ?? LoraLayer.BaseRowName;
                var result = new List<float[]>(inputs.Count);
                for (int i = 0; i < inputs.Count; i++)
                {
                    ct.ThrowIfCancellationRequested();
                    using var scope = torch.NewDisposeScope();
                    var device = Model.Device;
                    var ids = torch.tensor(inputs[i].Select(t => (long)t).ToArray(), device: device).view(1, inputs[i].Count);
                    using var output = _peft.Forward(new ForwardArgs { InputIds = ids, AttentionMask = torch.ones_like(ids), OutputHiddenStates = true }, [row]);
                    result.Add(read(output, i).data<float>().ToArray());
                }
                int tokens = inputs.Sum(x => x.Count);
                adapter?.Entry.AddTokens(tokens);
                Metrics?.Finished(adapter?.Entry.Key ?? LoraLayer.BaseRowName, "encoded", 0, tokens, clock.Elapsed);
                return (IReadOnlyList<float[]>)result;
            }, ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        _gate.Wait();
        _peft.Dispose();
        _gate.Dispose();
    }
}
