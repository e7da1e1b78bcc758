using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using Peft.Core;
using Peft.Training.Serving;
using Peft.Training.Serving.Adapters;
using Peft.Web.Serving;

namespace Peft.Web.Apis;

public sealed record MergedAdaptersDto(
    [property: JsonPropertyName("ids")] IReadOnlyList<string>? Ids,
    [property: JsonPropertyName("weights")] IReadOnlyList<double>? Weights,
    [property: JsonPropertyName("merge_strategy")] string? MergeStrategy,
    [property: JsonPropertyName("density")] double? Density);

public sealed record GenerateParameters
{
    [JsonPropertyName("adapter_id")] public string? AdapterId { get; init; }
    /// <summary>Only "local" (the server's adapter source) is accepted; hub/s3/pbase downloads are not done here.</summary>
    [JsonPropertyName("adapter_source")] public string? AdapterSource { get; init; }
    [JsonPropertyName("merged_adapters")] public MergedAdaptersDto? MergedAdapters { get; init; }
    /// <summary>Fan-out (extension): the same prompt through each of these adapters, answers side by side.</summary>
    [JsonPropertyName("adapter_ids")] public IReadOnlyList<string>? AdapterIds { get; init; }
    [JsonPropertyName("max_new_tokens")] public int? MaxNewTokens { get; init; }
    [JsonPropertyName("do_sample")] public bool? DoSample { get; init; }
    [JsonPropertyName("temperature")] public double? Temperature { get; init; }
    [JsonPropertyName("top_p")] public double? TopP { get; init; }
    [JsonPropertyName("top_k")] public int? TopK { get; init; }
    [JsonPropertyName("seed")] public long? Seed { get; init; }
    [JsonPropertyName("stop")] public JsonElement? Stop { get; init; }
    [JsonPropertyName("repetition_penalty")] public double? RepetitionPenalty { get; init; }
    [JsonPropertyName("details")] public bool? Details { get; init; }
}

public sealed record GenerateRequest(
    [property: JsonPropertyName("inputs")] string? Inputs,
    [property: JsonPropertyName("parameters")] GenerateParameters? Parameters);

public sealed record GenerateToken(
    [property: JsonPropertyName("id")] int Id,
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("logprob")] double Logprob,
    [property: JsonPropertyName("special")] bool Special);

public sealed record GenerateDetails(
    [property: JsonPropertyName("finish_reason")] string FinishReason,
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("generated_tokens")] int GeneratedTokens,
    [property: JsonPropertyName("seed")] long? Seed,
    [property: JsonPropertyName("tokens")] IReadOnlyList<GenerateToken>? Tokens);

public sealed record GenerateResponse(
    [property: JsonPropertyName("generated_text")] string GeneratedText,
    [property: JsonPropertyName("details")] GenerateDetails? Details,
    [property: JsonPropertyName("adapter_id")] string? AdapterId);

public sealed record GenerateStreamEvent(
    [property: JsonPropertyName("token")] GenerateToken Token,
    [property: JsonPropertyName("generated_text")] string? GeneratedText,
    [property: JsonPropertyName("details")] GenerateDetails? Details);

/// <summary>LoRAX-shaped /generate and /generate_stream, plus fan-out of one prompt to several adapters.</summary>
public static class GenerateApi
{
    public static IEndpointRouteBuilder MapGenerateApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/").WithTags("Inference");
        group.MapPost("/generate", GenerateAsync)
            .WithName("Generate")
            .WithSummary("Generates text (LoRAX /generate)")
            .WithDescription("`parameters.adapter_id` names the adapter (`name`, `name@3`, `name@alias`; empty = base), or `merged_adapters` merges several for this request (linear, ties, dare_linear, dare_ties; built once per content and cached). `adapter_ids` (extension) fans the prompt out to several adapters and returns `[{adapter_id, generated_text, details}]` in the same order. `do_sample` false (default) is greedy.")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity).ProducesProblem(StatusCodes.Status429TooManyRequests);
        group.MapPost("/generate_stream", StreamAsync)
            .WithName("GenerateStream")
            .WithSummary("Generates text as server-sent events (LoRAX /generate_stream)")
            .WithDescription("One event per token (`token`), the last one also carrying `generated_text` and `details`.");
        return routes;
    }

    private sealed record Plan(string Prompt, SamplingParams Sampling, MergeSpec? Merge, string? Adapter, IReadOnlyList<string>? FanOut, bool Details);

    private static Plan Parse(GenerateRequest r, InferenceService s)
    {
        if (string.IsNullOrEmpty(r.Inputs)) throw new PeftUserException("'inputs' is required", UserErrorKind.BadRequest);
        var p = r.Parameters ?? new GenerateParameters();
        if (p.AdapterSource is not (null or "local"))
            throw new PeftUserException($"'parameters.adapter_source' '{p.AdapterSource}' is not served here; adapters come from the server's own source (use \"local\" or leave it out)", UserErrorKind.Invalid);
        MergeSpec? merge = p.MergedAdapters is { } m
            ? new MergeSpec(m.Ids ?? [], m.Weights ?? [], m.MergeStrategy ?? "linear", m.Density)
            : null;
        if (merge is not null && p.AdapterIds is not null) throw new PeftUserException("'merged_adapters' and 'adapter_ids' cannot be combined", UserErrorKind.Invalid);
        if (p.AdapterIds is { } ids && (ids.Count == 0 || ids.Count > 16)) throw new PeftUserException("'parameters.adapter_ids' must name 1 to 16 adapters", UserErrorKind.Invalid);
        bool sample = p.DoSample == true;
        var sampling = new SamplingParams
        {
            MaxTokens = p.MaxNewTokens ?? s.Options.DefaultMaxTokens,
            Temperature = sample ? p.Temperature ?? 1.0 : 0,
            TopP = p.TopP ?? 1.0,
            TopK = p.TopK ?? 0,
            Seed = p.Seed,
            Stop = OpenAiSamplingRequest.Stops(p.Stop, "parameters.stop"),
            Logprobs = 0,
            RepetitionPenalty = p.RepetitionPenalty ?? 1.0,
        };
        return new Plan(r.Inputs, sampling, merge, p.AdapterId, p.AdapterIds, p.Details == true);
    }

    private static string Reason(string engine, SequenceResult r) =>
        engine == "length" ? "length" : r.StopString is not null ? "stop_sequence" : engine == "stop" ? "eos_token" : engine;

    private static GenerateDetails Details(ChoiceOutput c, int promptTokens, InferenceService s, bool tokens) =>
        new(Reason(c.Result.FinishReason, c.Result), promptTokens, c.Result.Tokens.Count, c.Result.Seed,
            tokens ? c.Result.Tokens.Select((t, i) => new GenerateToken(t.TokenId, c.TokenTexts[i], t.Logprob, s.IsSpecial(t.TokenId))).ToList() : null);

    private static async Task<Results<Ok<GenerateResponse>, Ok<List<GenerateResponse>>>> GenerateAsync(GenerateRequest request, InferenceService s, HttpContext http)
    {
        var plan = Parse(request, s);
        if (plan.FanOut is { } adapters)
        {
            // Every adapter's sequence is submitted before any is awaited, so they decode in one mixed batch.
            var calls = new List<GenerationCall>();
            try
            {
                foreach (var a in adapters) calls.Add(await GenerationCall.StartAsync(s, a, null, plan.Prompt, plan.Sampling, 1, http.RequestAborted));
                var answers = new List<GenerateResponse>();
                for (int i = 0; i < calls.Count; i++)
                {
                    var c = (await calls[i].CompleteAsync())[0];
                    answers.Add(new GenerateResponse(c.Text, plan.Details ? Details(c, calls[i].PromptTokens, s, true) : null, adapters[i]));
                }
                return TypedResults.Ok(answers);
            }
            finally
            {
                foreach (var c in calls) c.Dispose();
            }
        }
        using var call = await GenerationCall.StartAsync(s, plan.Adapter, plan.Merge, plan.Prompt, plan.Sampling, 1, http.RequestAborted);
        var choice = (await call.CompleteAsync())[0];
        return TypedResults.Ok(new GenerateResponse(choice.Text, plan.Details ? Details(choice, call.PromptTokens, s, true) : null, plan.Adapter));
    }

    private static async Task<EmptyHttpResult> StreamAsync(GenerateRequest request, InferenceService s, HttpContext http)
    {
        var plan = Parse(request, s);
        if (plan.FanOut is not null) throw new PeftUserException("'adapter_ids' (fan-out) is answered by /generate only", UserErrorKind.Invalid);
        using var call = await GenerationCall.StartAsync(s, plan.Adapter, plan.Merge, plan.Prompt, plan.Sampling, 1, http.RequestAborted);
        Sse.Start(http.Response);
        SampledToken? last = null;
        string pending = "";
        await foreach (var d in call.StreamAsync(http.RequestAborted))
        {
            // Each event carries one token; its text is what that token released (the last event also gets the tail).
            if (d.Final is null)
            {
                if (last is not null)
                    await Sse.WriteAsync(http.Response, new GenerateStreamEvent(new GenerateToken(last.TokenId, pending, last.Logprob, s.IsSpecial(last.TokenId)), null, null), http.RequestAborted);
                last = d.Token;
                pending = d.Text;
                continue;
            }
            var f = d.Final;
            var token = last ?? f.Result.Tokens[^1];
            await Sse.WriteAsync(http.Response, new GenerateStreamEvent(new GenerateToken(token.TokenId, pending + d.Text, token.Logprob, s.IsSpecial(token.TokenId)),
                f.Text, Details(f, call.PromptTokens, s, false)), http.RequestAborted);
        }
        return TypedResults.Empty;
    }
}
