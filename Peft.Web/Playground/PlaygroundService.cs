using System.Runtime.CompilerServices;
using Peft.Core;
using Peft.Training.Serving;
using Peft.Training.Serving.Adapters;
using Peft.Web.Serving;

namespace Peft.Web.Playground;

/// <summary>What the playground runs a prompt through: the base alone, one adapter (<c>name</c>, <c>name@N</c>, <c>name@alias</c>), or a weighted combination.</summary>
public sealed record PlaygroundTarget(string Label, string? Adapter, MergeSpec? Merge)
{
    public static PlaygroundTarget Base(string modelName) => new(modelName, null, null);
}

/// <summary>A piece of one answer; <see cref="Finish"/> is set on the last (stop, length, abort).</summary>
public sealed record PlaygroundDelta(string Text, string? Finish, int Tokens);

/// <summary>One label of a classification and its probability.</summary>
public sealed record LabelProbability(string Label, double Probability);

/// <summary>An adapter version the server knows, with its memory tier when loaded.</summary>
public sealed record ServedAdapter(string Name, string Version, string? Tier, long? Bytes, bool Pinned, long Requests);

/// <summary>The serving side of the dashboard: the base, what the adapter cache holds and its budgets; or why nothing is served.</summary>
public sealed record ServingStatus(string? ModelName, string? Unavailable, IReadOnlyList<ServedAdapter> Adapters,
    long DeviceBytes, long HostBytes, long DeviceBudgetBytes, long HostBudgetBytes, int QueueLimit, int MaxBatch);

/// <summary>
/// The browser's typed door to the in-process <see cref="InferenceService"/> (no HTTP loopback): adapters on offer,
/// serving status, and streamed answers through the same <see cref="GenerationCall"/> as <c>/v1/completions</c>.
/// The inference service is resolved on first use, so a missing model is a readable state, not a failed page.
/// </summary>
public sealed class PlaygroundService(IServiceProvider services)
{
    private InferenceService? _inference;
    private string? _unavailable;
    private EncoderModels? _encoders;
    private bool _encodersTried;

    private InferenceService? Inference()
    {
        if (_inference is not null || _unavailable is not null) return _inference;
        try { _inference = services.GetRequiredService<InferenceService>(); }
        catch (PeftUserException e) { _unavailable = $"The inference server could not start: {e.Message}"; }
        catch (InvalidOperationException) { _unavailable = "This hub runs without an inference server."; }
        return _inference;
    }

    private InferenceService Require() => Inference() ?? throw new PeftUserException(_unavailable!, UserErrorKind.NotFound);

    public async Task<ServingStatus> StatusAsync(CancellationToken ct)
    {
        var s = await Task.Run(Inference, ct);
        if (s is null) return new ServingStatus(null, _unavailable, [], 0, 0, 0, 0, 0, 0);
        var loaded = s.Cache.Snapshot().ToDictionary(a => a.Key);
        var known = await s.Cache.Source.ListAsync(ct);
        var rows = known.Select(l => loaded.TryGetValue(l.Key, out var a)
                ? new ServedAdapter(l.Name, l.Version, a.Tier, a.Bytes, a.Pinned, a.Requests)
                : new ServedAdapter(l.Name, l.Version, null, null, false, 0))
            .Concat(loaded.Values.Where(a => known.All(l => l.Key != a.Key)).Select(a =>
            {
                var at = a.Key.LastIndexOf('@');
                return new ServedAdapter(at > 0 ? a.Key[..at] : a.Key, at > 0 ? a.Key[(at + 1)..] : "", a.Tier, a.Bytes, a.Pinned, a.Requests);
            }))
            .ToList();
        long Sum(string tier) => loaded.Values.Where(a => a.Tier == tier).Sum(a => a.Bytes);
        var o = s.Options;
        return new ServingStatus(s.ModelName, null, rows, Sum("device"), Sum("host"), o.DeviceBudgetMb << 20, o.HostBudgetMb << 20, o.MaxQueue, o.MaxBatchSize);
    }

    /// <summary>
    /// Streams the answer of <paramref name="target"/>. Errors before the first token (unknown adapter, bad settings)
    /// are <see cref="PeftUserException"/>s with the server's message; cancelling stops the sequence.
    /// </summary>
    public async IAsyncEnumerable<PlaygroundDelta> StreamAsync(PlaygroundTarget target, string prompt, SamplingParams sampling,
        [EnumeratorCancellation] CancellationToken ct)
    {
        var s = Require();
        if (string.IsNullOrEmpty(prompt)) throw new PeftUserException("prompt: write a prompt first", UserErrorKind.BadRequest);
        sampling.Validate(s.Options.MaxTokensLimit);
        using var call = await GenerationCall.StartAsync(s, target.Adapter, target.Merge, prompt, sampling, 1, ct);
        int tokens = 0;
        await foreach (var d in call.StreamAsync(ct))
        {
            if (d.Token is not null) tokens++;
            if (d.Final is { } f) { yield return new PlaygroundDelta(d.Text, f.Result.FinishReason == "cancelled" ? "abort" : f.Result.FinishReason, f.Result.Tokens.Count); break; }
            if (d.Text.Length > 0) yield return new PlaygroundDelta(d.Text, null, tokens);
        }
    }

    // Encoder bases are optional (Serving:Encoders); a broken entry there leaves generation working and classification off.
    private EncoderModels? Encoders()
    {
        if (_encodersTried) return _encoders;
        _encodersTried = true;
        try { _encoders = services.GetService<EncoderModels>(); }
        catch (PeftUserException) { _encoders = null; }
        return _encoders;
    }

    /// <summary>The encoder bases served for classification and embeddings (none unless Serving:Encoders lists some).</summary>
    public async Task<IReadOnlyList<string>> EncoderBasesAsync(CancellationToken ct) =>
        (await Task.Run(Encoders, ct))?.Hosts.Select(h => h.Name).Order(StringComparer.Ordinal).ToList() ?? [];

    /// <summary>
    /// True when <paramref name="target"/> answers with labels rather than text: an encoder base, or an adapter whose
    /// base is one (the same routing as <c>/v1/classify</c>). Anything else, unknown names included, is generation.
    /// </summary>
    public async Task<bool> ClassifiesAsync(PlaygroundTarget target, CancellationToken ct)
    {
        if (target.Adapter is not { } model || target.Merge is not null) return false;
        var encoders = await Task.Run(Encoders, ct);
        if (encoders is null || encoders.Hosts.Count == 0) return false;
        if (encoders.Hosts.Any(h => string.Equals(h.Name, model, StringComparison.OrdinalIgnoreCase))) return true;
        try
        {
            var (_, lease) = await encoders.ResolveAsync(model, ct);
            lease?.Dispose();
            return true;
        }
        catch (PeftUserException) { return false; }
    }

    /// <summary>
    /// Label probabilities for <paramref name="input"/> (text, or a JSON array of token ids for a base without a
    /// tokenizer), most likely first, through the same engine as <c>/v1/classify</c>.
    /// </summary>
    public async Task<IReadOnlyList<LabelProbability>> ClassifyAsync(string model, string input, CancellationToken ct)
    {
        var encoders = await Task.Run(Encoders, ct) ?? throw new PeftUserException("this hub serves no encoder model (set Serving:Encoders)", UserErrorKind.NotFound);
        if (string.IsNullOrWhiteSpace(input)) throw new PeftUserException("prompt: write a text to classify first", UserErrorKind.BadRequest);
        System.Text.Json.JsonElement element;
        try
        {
            element = input.TrimStart().StartsWith('[')
                ? System.Text.Json.JsonDocument.Parse(input).RootElement
                : System.Text.Json.JsonSerializer.SerializeToElement(input);
        }
        catch (System.Text.Json.JsonException e) { throw new PeftUserException($"prompt: token ids must be a JSON array of integers ({e.Message})", UserErrorKind.BadRequest); }
        var (host, lease) = await encoders.ResolveAsync(model, ct);
        using (lease)
        {
            var inputs = Apis.EncoderApis.Inputs(element, host);
            if (inputs.Count != 1) throw new PeftUserException("prompt: classify one text (or one list of token ids) at a time", UserErrorKind.BadRequest);
            var scores = (await host.Engine.ClassifyAsync(inputs, lease, ct))[0];
            return scores.Labels.Select((l, i) => new LabelProbability(l, scores.Probabilities[i])).OrderByDescending(p => p.Probability).ToList();
        }
    }
}
