using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Peft.Training.Serving;
using Peft.Training.Serving.Adapters;

namespace Peft.Web.Serving;

/// <summary>One finished choice: its final text and the engine's result.</summary>
public sealed record ChoiceOutput(int Index, string Text, SequenceResult Result, IReadOnlyList<string> TokenTexts);

/// <summary>A piece of a streamed choice: a token and the text it released; <c>Final</c> is set on the last one.</summary>
public sealed record ChoiceDelta(int Index, SampledToken? Token, string Text, ChoiceOutput? Final);

/// <summary>
/// The n sequences of one HTTP request (seeds seed, seed+1, ...), shared by the OpenAI and LoRAX endpoints. The
/// adapter is leased once per sequence before anything is written, so resolution errors become problem details.
/// Cancelled by the client's disconnect (which frees the slots) or by the server's timeout (answered 504).
/// </summary>
public sealed class GenerationCall : IDisposable
{
    private readonly InferenceService _service;
    private readonly CancellationTokenSource _cts;
    private readonly CancellationToken _aborted;

    private GenerationCall(InferenceService service, CancellationToken aborted)
    {
        _service = service;
        _aborted = aborted;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        _cts.CancelAfter(TimeSpan.FromSeconds(service.Options.RequestTimeoutSeconds));
    }

    public IReadOnlyList<InferenceRequest> Requests { get; private set; } = [];
    public IReadOnlyList<TextAssembler> Assemblers { get; private set; } = [];
    public int PromptTokens { get; private set; }

    public static async Task<GenerationCall> StartAsync(InferenceService service, string? model, MergeSpec? merge, string prompt,
        SamplingParams p, int n, CancellationToken aborted)
    {
        var call = new GenerationCall(service, aborted);
        var leases = new List<AdapterLease?>();
        try
        {
            for (int i = 0; i < n; i++) leases.Add(await service.ResolveAsync(model, merge, aborted));
            var ids = service.Encode(prompt);
            call.PromptTokens = ids.Count;
            var requests = new List<InferenceRequest>();
            for (int i = 0; i < n; i++)
            {
                var pi = p.Seed is long s ? p with { Seed = s + i } : p;
                var lease = leases[i];
                leases[i] = null;   // owned by the request from here on
                requests.Add(service.Submit(ids, pi, lease, call._cts.Token));
            }
            call.Requests = requests;
            call.Assemblers = requests.Select(_ => new TextAssembler(service, p.Stop)).ToList();
            return call;
        }
        catch
        {
            foreach (var l in leases) l?.Dispose();
            call.Dispose();
            throw;
        }
    }

    private (ChoiceOutput Choice, string Tail) Output(int i, SequenceResult r)
    {
        if (r.FinishReason == "cancelled" && !_aborted.IsCancellationRequested && _cts.IsCancellationRequested)
            throw new GenerationTimeoutException(_service.Options.RequestTimeoutSeconds);
        string rest = Assemblers[i].Finish(r);
        return (new ChoiceOutput(i, Assemblers[i].Text, r, r.Tokens.Select(t => _service.TokenText(t.TokenId)).ToList()), rest);
    }

    public async Task<IReadOnlyList<ChoiceOutput>> CompleteAsync()
    {
        var results = await Task.WhenAll(Requests.Select(r => r.Completion));
        return results.Select((r, i) => Output(i, r).Choice).ToList();
    }

    /// <summary>Deltas of all choices as they come (interleaved when n &gt; 1), each choice ending with its final piece.</summary>
    public async IAsyncEnumerable<ChoiceDelta> StreamAsync([EnumeratorCancellation] CancellationToken ct = default)
    {
        var merged = Channel.CreateUnbounded<ChoiceDelta>();
        var pumps = Requests.Select((r, i) => Task.Run(async () =>
        {
            await foreach (var t in r.Tokens.ReadAllAsync(CancellationToken.None))
                await merged.Writer.WriteAsync(new ChoiceDelta(i, t, Assemblers[i].Push(t.TokenId), null));
            var result = await r.Completion;
            var (final, rest) = Output(i, result);
            await merged.Writer.WriteAsync(new ChoiceDelta(i, null, rest, final));
        })).ToList();
        _ = Task.WhenAll(pumps).ContinueWith(t => merged.Writer.TryComplete(t.Exception?.InnerException), TaskScheduler.Default);
        await foreach (var d in merged.Reader.ReadAllAsync(ct)) yield return d;
    }

    public void Dispose()
    {
        _cts.Cancel();   // a sequence still running (client gone, error while writing) leaves the batch
        _cts.Dispose();
    }
}
