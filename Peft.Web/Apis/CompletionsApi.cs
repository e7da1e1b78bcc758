using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using Peft.Core;
using Peft.Training.Serving;
using Peft.Web.Serving;

namespace Peft.Web.Apis;

public sealed record CompletionRequest : OpenAiSamplingRequest
{
    /// <summary>A string (or an array holding one string).</summary>
    [JsonPropertyName("prompt")] public JsonElement Prompt { get; init; }
    /// <summary>Log-probabilities of the chosen token and this many alternatives (0–20).</summary>
    [JsonPropertyName("logprobs")] public int? Logprobs { get; init; }
}

public sealed record CompletionLogprobs(
    [property: JsonPropertyName("tokens")] IReadOnlyList<string> Tokens,
    [property: JsonPropertyName("token_logprobs")] IReadOnlyList<double> TokenLogprobs,
    [property: JsonPropertyName("top_logprobs")] IReadOnlyList<Dictionary<string, double>>? TopLogprobs);

public sealed record CompletionChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("logprobs")] CompletionLogprobs? Logprobs,
    [property: JsonPropertyName("finish_reason")] string? FinishReason);

public sealed record CompletionResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] IReadOnlyList<CompletionChoice> Choices,
    [property: JsonPropertyName("usage")] UsageDto? Usage);

/// <summary>OpenAI-compatible text completions.</summary>
public static class CompletionsApi
{
    public static RouteGroupBuilder MapCompletionsApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/v1/completions").WithTags("Inference");
        group.MapPost("/", CreateAsync)
            .WithName("CreateCompletion")
            .WithSummary("Completes a prompt (OpenAI /v1/completions)")
            .WithDescription("`model` is the base model's name for the base alone, or an adapter as `name`, `name@VERSION` or `name@ALIAS`. `stream: true` answers with server-sent events ending in `data: [DONE]`; a fixed `seed` gives the same text streamed or not. Errors are problem details: unknown adapter 404, adapter for another base 409, bad parameters 400/422, full queue 429 with Retry-After, timeout 504.")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity).ProducesProblem(StatusCodes.Status429TooManyRequests);
        return group;
    }

    internal static SamplingParams Sampling(OpenAiSamplingRequest r, ServingOptions o, int? logprobs) => new()
    {
        MaxTokens = r.MaxTokens ?? o.DefaultMaxTokens,
        Temperature = r.Temperature ?? 1.0,
        TopP = r.TopP ?? 1.0,
        TopK = r.TopK ?? 0,
        Seed = r.Seed,
        Stop = r.StopList(),
        Logprobs = logprobs,
        PresencePenalty = r.PresencePenalty ?? 0,
        FrequencyPenalty = r.FrequencyPenalty ?? 0,
        RepetitionPenalty = r.RepetitionPenalty ?? 1.0,
    };

    internal static int N(OpenAiSamplingRequest r, ServingOptions o) =>
        r.N is null ? 1 : r.N >= 1 && r.N <= o.MaxN ? r.N.Value
            : throw new PeftUserException($"'n' must be in [1, {o.MaxN}], got {r.N}", UserErrorKind.Invalid);

    private static string PromptText(JsonElement prompt) => prompt.ValueKind switch
    {
        JsonValueKind.String => prompt.GetString()!,
        JsonValueKind.Array when prompt.GetArrayLength() == 1 && prompt[0].ValueKind == JsonValueKind.String => prompt[0].GetString()!,
        JsonValueKind.Undefined or JsonValueKind.Null => throw new PeftUserException("'prompt' is required", UserErrorKind.BadRequest),
        _ => throw new PeftUserException("'prompt' must be a string (or an array of one string)", UserErrorKind.Invalid),
    };

    internal static string Finish(string reason) => reason == "cancelled" ? "abort" : reason;

    private static CompletionLogprobs? Logprobs(ChoiceOutput c, InferenceService s, int? requested) => requested is null ? null : new(
        c.TokenTexts,
        c.Result.Tokens.Select(t => t.Logprob).ToList(),
        requested > 0 ? c.Result.Tokens.Select(t => t.Top!.GroupBy(x => s.TokenText(x.TokenId)).ToDictionary(g => g.Key, g => g.First().Logprob)).ToList() : null);

    private static async Task<Results<Ok<CompletionResponse>, EmptyHttpResult>> CreateAsync(CompletionRequest request, InferenceService service, HttpContext http)
    {
        var p = Sampling(request, service.Options, request.Logprobs);
        string prompt = PromptText(request.Prompt);
        int n = N(request, service.Options);
        string id = "cmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string model = request.Model is { Length: > 0 } m ? m : service.ModelName;
        using var call = await GenerationCall.StartAsync(service, request.Model, null, prompt, p, n, http.RequestAborted);
        if (request.Stream != true)
        {
            var choices = await call.CompleteAsync();
            int completion = choices.Sum(c => c.Result.Tokens.Count);
            return TypedResults.Ok(new CompletionResponse(id, "text_completion", created, model,
                choices.Select(c => new CompletionChoice(c.Index, c.Text, Logprobs(c, service, request.Logprobs), Finish(c.Result.FinishReason))).ToList(),
                new UsageDto(call.PromptTokens, completion, call.PromptTokens + completion)));
        }
        Sse.Start(http.Response);
        await foreach (var d in call.StreamAsync(http.RequestAborted))
        {
            if (d.Text.Length == 0 && d.Final is null) continue;
            var choice = new CompletionChoice(d.Index, d.Text, null, d.Final is { } f ? Finish(f.Result.FinishReason) : null);
            await Sse.WriteAsync(http.Response, new CompletionResponse(id, "text_completion", created, model, [choice], null), http.RequestAborted);
        }
        await Sse.DoneAsync(http.Response, http.RequestAborted);
        return TypedResults.Empty;
    }
}
