using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using Peft.Core;
using Peft.Training.Generation;
using Peft.Training.Models;
using Peft.Training.Nn;
using Peft.Training.Serving.Adapters;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Serving;

public sealed class ServingEngineOptions
{
    /// <summary>Sequences decoding together at most.</summary>
    public int MaxBatchSize { get; set; } = 32;
    /// <summary>Waiting requests beyond which a submission is refused (HTTP 429).</summary>
    public int MaxQueue { get; set; } = 256;
    /// <summary>New sequences prefilled between the ends of two decode steps (bounds the stall joins cause to running ones).</summary>
    public int MaxPrefillsPerStep { get; set; } = 4;
    /// <summary>
    /// Prefill a request that arrives during a decode step between two of the step's layers, rather than after the
    /// whole step: its first token no longer waits for the running batch (the rows' next token waits for the prefill
    /// either way). It joins the batch after the step.
    /// </summary>
    public bool PrefillBetweenLayers { get; set; } = true;
    public int MaxTokensLimit { get; set; } = 2048;
    /// <summary>Keep each step's raw logits in the result (tests and debugging).</summary>
    public bool CaptureLogits { get; set; }
}

/// <summary>Too many requests waiting; retry after <see cref="RetryAfter"/>.</summary>
public sealed class ServerBusyException(TimeSpan retryAfter)
    : Exception($"the server has too many requests waiting; retry after {retryAfter.TotalSeconds:0} s")
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>
/// Continuous batching over one base model: a single loop thread owns the <see cref="PeftModel"/>. It prefills newly
/// admitted requests (each alone, with its adapter) between decode steps, or between the layers of a step when they
/// arrive during one, and joins them to the running batch after the step; every row of the batch carries its own LoRA
/// adapter (grouped per adapter inside each layer, no merging); finished or cancelled rows leave right away. Disk reads
/// of adapters happen before admission, off this thread.
/// </summary>
public sealed class ServingEngine : IDisposable
{
    private readonly PeftModel _peft;
    private readonly ConcurrentQueue<InferenceRequest> _queue = new();
    private readonly ConcurrentQueue<(Action<PeftModel> Work, TaskCompletionSource Done)> _control = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Thread _loop;
    private readonly RunningBatch _batch;
    private readonly HashSet<long> _eos;
    private readonly Func<IReadOnlyList<int>, string>? _detokenize;
    private readonly int _maxContext;
    /// <summary>Prefilled sequences waiting for the next join (all of them join in one copy of the running cache).</summary>
    private readonly List<(InferenceRequest, KvCache)> _prefilled = new();
    private int _prefillBudget;
    private long _prefillsBetweenLayers;
    private readonly Action _prefillBetweenLayers;   // one delegate, not one per decode step
    private volatile bool _stopping;
    private int _queued;

    public ServingEngine(PretrainedModel model, AdapterCache adapters, ServingEngineOptions? options = null,
        Func<IReadOnlyList<int>, string>? detokenize = null, ServingMetrics? metrics = null)
    {
        if (model.IsEncoderDecoder || model.Task != TaskType.CausalLM)
            throw new PeftUserException($"the serving engine needs a decoder-only causal LM; this model is {model.ModelType} ({model.Task})", UserErrorKind.Invalid);
        model.eval();
        _peft = PeftModel.ForServing(model, "LORA");
        Adapters = adapters;
        Options = options ?? new ServingEngineOptions();
        Metrics = metrics;
        _detokenize = detokenize;
        _eos = (GenerationConfig.ForModel(model).EosTokenIds ?? []).Select(x => (long)x).ToHashSet();
        _maxContext = model.Config.TryGetInt("max_position_embeddings", "n_positions") ?? int.MaxValue;
        _batch = new RunningBatch(model.NumLayers);
        _prefillBetweenLayers = PrefillBetweenLayers;
        _loop = new Thread(Loop) { IsBackground = true, Name = "peft-serving-loop" };
        _loop.Start();
    }

    public AdapterCache Adapters { get; }
    public ServingEngineOptions Options { get; }
    public ServingMetrics? Metrics { get; }
    public PretrainedModel Model => _peft.BaseModel;
    public int Waiting => Volatile.Read(ref _queued);
    /// <summary>Sequences in the running batch after the last step (read from any thread; for metrics and tests).</summary>
    public int Running { get; private set; }
    /// <summary>The most sequences that ever decoded in one step.</summary>
    public int PeakBatch { get; private set; }
    /// <summary>Requests prefilled between the layers of a decode step (see <see cref="ServingEngineOptions.PrefillBetweenLayers"/>).</summary>
    public long PrefillsBetweenLayers => Interlocked.Read(ref _prefillsBetweenLayers);

    /// <summary>
    /// Queues a sequence. <paramref name="adapter"/> (from <see cref="AdapterCache"/>) is owned by the request from
    /// here on and released when it ends. Throws <see cref="ServerBusyException"/> when the queue is full.
    /// </summary>
    public InferenceRequest Submit(IReadOnlyList<int> prompt, SamplingParams p, AdapterLease? adapter, CancellationToken ct = default)
    {
        try
        {
            if (_stopping) throw new ObjectDisposedException(nameof(ServingEngine));
            if (prompt.Count == 0) throw new PeftUserException("the prompt is empty", UserErrorKind.Invalid);
            p.Validate(Options.MaxTokensLimit);
            int virtualTokens = VirtualTokens.CountOf(adapter?.Entry.Config);
            if (virtualTokens + prompt.Count + 1 > _maxContext)
                throw new PeftUserException($"the prompt has {prompt.Count} tokens{(virtualTokens > 0 ? $" behind the adapter's {virtualTokens} virtual tokens" : "")}; this model's context is {_maxContext}", UserErrorKind.Invalid);
            if (Interlocked.Increment(ref _queued) > Options.MaxQueue)
            {
                Interlocked.Decrement(ref _queued);
                throw new ServerBusyException(TimeSpan.FromSeconds(1));
            }
        }
        catch
        {
            adapter?.Dispose();
            throw;
        }
        var request = new InferenceRequest(prompt, p, adapter, ct, Options.CaptureLogits);
        _queue.Enqueue(request);
        _wake.Release();
        return request;
    }

    /// <summary>Runs <paramref name="work"/> on the loop thread between steps (adapter preload/unload).</summary>
    public Task RunOnLoopAsync(Action<PeftModel> work)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _control.Enqueue((work, done));
        _wake.Release();
        return done.Task;
    }

    /// <summary>Attaches a leased adapter to the model now (preload); the lease stays with the caller.</summary>
    public Task PreloadAsync(AdapterLease lease) => RunOnLoopAsync(peft => Adapters.Attach(lease.Entry, peft));

    /// <summary>Detaches and forgets an idle adapter version; false when sequences still use it.</summary>
    public async Task<bool> UnloadAsync(string key)
    {
        bool done = false;
        await RunOnLoopAsync(peft => done = Adapters.Unload(key, peft));
        return done;
    }

    /// <summary>Test hook run on the loop thread after each decode step (lets a test hold a sequence open).</summary>
    internal Action? AfterDecodeStep { get; set; }

    /// <summary>Test hook run on the loop thread before each layer of a decode step (lets a test submit mid-step).</summary>
    internal Action? BetweenLayers { get; set; }

    private void Loop()
    {
        using var noGrad = torch.no_grad();
        while (!_stopping)
        {
            try
            {
                RunControl();
                if (_batch.Count == 0) _prefillBudget = Options.MaxPrefillsPerStep;
                Admit();
                if (_batch.Count > 0)
                {
                    DecodeStep();
                    _prefillBudget = Options.MaxPrefillsPerStep;
                    AfterDecodeStep?.Invoke();
                    if (_batch.Count == 0 && _prefilled.Count == 0) _peft.ReleaseRowCaches();
                }
                Running = _batch.Count;
                if (_batch.Count == 0 && _prefilled.Count == 0 && _queue.IsEmpty && _control.IsEmpty) _wake.Wait(100);
            }
            catch (Exception e)
            {
                // A bug in a step must not kill the server: fail the running sequences and go on.
                foreach (var r in _batch.Rows) r.Fail(e);
                _batch.Keep([]);
                FailPrefilled(e);
                _peft.ReleaseRowCaches();
            }
        }
        foreach (var r in _batch.Rows) r.Finish("cancelled", null);
        _batch.Keep([]);
        foreach (var (r, cache) in _prefilled)
        {
            cache.Dispose();
            r.Finish("cancelled", null);
        }
        _prefilled.Clear();
        while (_queue.TryDequeue(out var q)) q.Finish("cancelled", null);
    }

    private void RunControl()
    {
        while (_control.TryDequeue(out var c))
        {
            try { c.Work(_peft); c.Done.TrySetResult(); }
            catch (Exception e) { c.Done.TrySetException(e); }
        }
    }

    /// <summary>Between steps: prefills waiting requests within the budget and joins everything prefilled since the last join.</summary>
    private void Admit()
    {
        PrefillWaiting();
        if (_prefilled.Count == 0) return;
        try
        {
            _batch.Join(_prefilled);
            _prefilled.Clear();
        }
        catch (Exception e)
        {
            // Not joined: these sequences end here; the loop's handler fails the running ones.
            FailPrefilled(e);
            throw;
        }
    }

    private void FailPrefilled(Exception e)
    {
        foreach (var (r, cache) in _prefilled)
        {
            cache.Dispose();
            r.Fail(e);
        }
        _prefilled.Clear();
    }

    /// <summary>Prefills queued requests (each alone) while the batch has room and the step's prefill budget lasts.</summary>
    private void PrefillWaiting(bool midStep = false)
    {
        while (_batch.Count + _prefilled.Count < Options.MaxBatchSize && _prefillBudget > 0 && _queue.TryDequeue(out var r))
        {
            Interlocked.Decrement(ref _queued);
            if (r.Cancellation.IsCancellationRequested) { End(r, "cancelled"); continue; }
            _prefillBudget--;
            try
            {
                if (r.Adapter is { Entry: var entry })
                {
                    if (midStep && !entry.Attached) OutsideDisposeScopes(() => Adapters.Attach(entry, _peft));
                    else Adapters.Attach(entry, _peft);
                }
                if (Prefill(r) is { } cache) _prefilled.Add((r, cache));
            }
            catch (Exception e)
            {
                Metrics?.Failed(r.AdapterKey);
                r.Fail(e);
            }
        }
    }

    /// <summary>
    /// Between two layers of a decode step: a request that arrived during the step is prefilled now. The adapter
    /// states the step relies on survive: a forward restores the outer one's row names, and attaching an adapter only
    /// clears gathered stacks, which the step's later layers gather again.
    /// </summary>
    private void PrefillBetweenLayers()
    {
        BetweenLayers?.Invoke();
        if (_queue.IsEmpty) return;
        int budget = _prefillBudget;
        PrefillWaiting(midStep: true);
        Interlocked.Add(ref _prefillsBetweenLayers, budget - _prefillBudget);
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a thread of its own while this one waits. Dispose scopes belong to a thread: an
    /// adapter attached inside a decode step would otherwise have its new parameters taken by the step's scope and
    /// freed at the step's end.
    /// </summary>
    private static void OutsideDisposeScopes(Action work)
    {
        ExceptionDispatchInfo? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var noGrad = torch.no_grad();
                work();
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
        }) { IsBackground = true, Name = "peft-serving-attach" };
        thread.Start();
        thread.Join();
        error?.Throw();
    }

    /// <summary>
    /// Runs the prompt alone through the model with the request's adapter and picks the first token; returns the
    /// sequence's cache to join the batch with, or null when it already ended.
    /// </summary>
    private KvCache? Prefill(InferenceRequest r)
    {
        var cache = new KvCache(_peft.BaseModel.NumLayers);
        try
        {
            float[] logits;
            using (var scope = torch.NewDisposeScope())
            {
                var device = _peft.BaseModel.Device;
                var ids = torch.tensor(r.Prompt.Select(t => (long)t).ToArray(), device: device).view(1, r.Prompt.Count);
                var args = r.Adapter?.Entry.Virtual is { } virtualTokens
                    ? virtualTokens.PrefillArgs(_peft, ids, cache)
                    : new ForwardArgs
                    {
                        InputIds = ids, AttentionMask = torch.ones_like(ids), PositionIds = TensorRanges.Of(0, r.Prompt.Count, device).view(1, r.Prompt.Count),
                        Cache = cache, LogitsToKeep = 1,
                    };
                using var output = _peft.Forward(args, [r.RowName]);
                logits = output.Logits.select(1, -1).to(ScalarType.Float32).cpu().data<float>().ToArray();
            }
            Metrics?.FirstToken(r.AdapterKey, r.Clock.Elapsed);
            if (Choose(r, logits) is { } reason)
            {
                cache.Dispose();
                End(r, reason);
                return null;
            }
            return cache;
        }
        catch
        {
            cache.Dispose();
            throw;
        }
    }

    private void DecodeStep()
    {
        Metrics?.BatchOccupancy(_batch.Count);
        PeakBatch = Math.Max(PeakBatch, _batch.Count);
        float[] logits;
        long vocab;
        if (Options.PrefillBetweenLayers) _peft.BaseModel.BeforeDecoderLayer = _prefillBetweenLayers;
        try
        {
            logits = _batch.Step((args, names) => _peft.Forward(args, names), out vocab);
        }
        finally
        {
            _peft.BaseModel.BeforeDecoderLayer = null;
        }
        var keep = new List<int>(_batch.Count);
        for (int i = 0; i < _batch.Count; i++)
        {
            var r = _batch.Rows[i];
            string? reason = r.Cancellation.IsCancellationRequested ? "cancelled" : Choose(r, logits.AsSpan((int)(i * vocab), (int)vocab));
            if (reason is null) keep.Add(i);
            else End(r, reason);
        }
        _batch.Keep(keep);
    }

    /// <summary>Samples and emits one token; returns the finish reason when the sequence is done, else null.</summary>
    private string? Choose(InferenceRequest r, ReadOnlySpan<float> logits)
    {
        r.CapturedLogits?.Add(logits.ToArray());
        var token = r.Sampler.Next(logits);
        r.Emit(token);
        if (r.Params.StopAtEos && _eos.Contains(token.TokenId)) return "stop";
        if (r.Params.Stop.Count > 0 && _detokenize is not null)
        {
            string text = _detokenize(r.Generated.Select(t => t.TokenId).ToList());
            foreach (var s in r.Params.Stop)
                if (text.Contains(s, StringComparison.Ordinal)) { r.StopString = s; return "stop"; }
        }
        if (r.Generated.Count >= r.Params.MaxTokens || r.ContextUsed >= _maxContext) return "length";
        return null;
    }

    private void End(InferenceRequest r, string reason)
    {
        Metrics?.Finished(r.AdapterKey, reason, r.Generated.Count, r.Prompt.Count, r.Clock.Elapsed);
        r.Finish(reason, r.StopString);
    }

    public void Dispose()
    {
        _stopping = true;
        _wake.Release();
        _loop.Join();
        _batch.Dispose();
        _peft.Dispose();
        _wake.Dispose();
    }
}
