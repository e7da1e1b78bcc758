using System.Diagnostics;
using System.Threading.Channels;
using Peft.Training.Serving.Adapters;

namespace Peft.Training.Serving;

/// <summary>How a sequence ended: "stop" (eos or a stop string), "length" (max_tokens or the context), "cancelled".</summary>
public sealed record SequenceResult(IReadOnlyList<SampledToken> Tokens, string FinishReason, int PromptTokens, long Seed,
    TimeSpan TimeToFirstToken, TimeSpan Duration, string? StopString, IReadOnlyList<float[]>? Logits);

/// <summary>
/// One sequence submitted to the <see cref="ServingEngine"/>. Tokens stream through <see cref="Tokens"/> as they are
/// chosen; <see cref="Completion"/> ends with the whole result. Cancel the token given at submission to free the slot.
/// </summary>
public sealed class InferenceRequest
{
    private readonly Channel<SampledToken> _tokens = Channel.CreateUnbounded<SampledToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly TaskCompletionSource<SequenceResult> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    internal readonly List<SampledToken> Generated = new();
    internal readonly List<float[]>? CapturedLogits;
    internal readonly Stopwatch Clock = Stopwatch.StartNew();
    internal TimeSpan FirstTokenAt;
    internal string? StopString;

    internal InferenceRequest(IReadOnlyList<int> prompt, SamplingParams p, AdapterLease? adapter, CancellationToken ct, bool captureLogits)
    {
        Prompt = prompt;
        Params = p;
        Adapter = adapter;
        Cancellation = ct;
        Seed = p.Seed ?? Random.Shared.NextInt64(0, long.MaxValue);
        Sampler = new TokenSampler(p, Seed);
        Sampler.ObservePrompt(prompt);
        CapturedLogits = captureLogits ? new List<float[]>() : null;
    }

    public IReadOnlyList<int> Prompt { get; }
    public SamplingParams Params { get; }
    public AdapterLease? Adapter { get; }
    public long Seed { get; }
    internal CancellationToken Cancellation { get; }
    internal TokenSampler Sampler { get; }
    /// <summary>The adapter's name in the served model's forward pass ("__base__" when none).</summary>
    internal string RowName => Adapter?.Entry.RowName ?? Tuners.Lora.LoraLayer.BaseRowName;
    /// <summary>Positions this sequence fills: the adapter's virtual tokens, the prompt and what it generated.</summary>
    internal int ContextUsed => VirtualTokens.CountOf(Adapter?.Entry.Config) + Prompt.Count + Generated.Count;
    public string AdapterKey => Adapter?.Entry.Key ?? "__base__";

    public ChannelReader<SampledToken> Tokens => _tokens.Reader;
    public Task<SequenceResult> Completion => _done.Task;

    internal void Emit(SampledToken t)
    {
        if (Generated.Count == 0) FirstTokenAt = Clock.Elapsed;
        Generated.Add(t);
        _tokens.Writer.TryWrite(t);
    }

    internal void Finish(string reason, string? stop)
    {
        Adapter?.Entry.AddTokens(Generated.Count);
        Adapter?.Dispose();
        _tokens.Writer.TryComplete();
        _done.TrySetResult(new SequenceResult(Generated.ToList(), reason, Prompt.Count, Seed, FirstTokenAt, Clock.Elapsed, stop, CapturedLogits));
    }

    internal void Fail(Exception e)
    {
        Adapter?.Dispose();
        _tokens.Writer.TryComplete(e);
        _done.TrySetException(e);
    }
}
