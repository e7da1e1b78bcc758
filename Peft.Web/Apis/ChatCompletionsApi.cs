using Peft.Core.Data;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using Peft.Core;
using Peft.Training.Data;
using Peft.Web.Serving;

namespace Peft.Web.Apis;

public sealed record ChatMessageDto(
    [property: JsonPropertyName("role")] string Role,
    [property: JsonPropertyName("content")] string? Content);

public sealed record ChatCompletionRequest : OpenAiSamplingRequest
{
    [JsonPropertyName("messages")] public IReadOnlyList<ChatMessageDto>? Messages { get; init; }
    [JsonPropertyName("logprobs")] public bool? Logprobs { get; init; }
    [JsonPropertyName("top_logprobs")] public int? TopLogprobs { get; init; }
}

public sealed record TopLogprobDto(
    [property: JsonPropertyName("token")] string Token,
    [property: JsonPropertyName("logprob")] double Logprob);

public sealed record TokenLogprobDto(
    [property: JsonPropertyName("token")] string Token,
    [property: JsonPropertyName("logprob")] double Logprob,
    [property: JsonPropertyName("top_logprobs")] IReadOnlyList<TopLogprobDto> TopLogprobs);

public sealed record ChatLogprobsDto([property: JsonPropertyName("content")] IReadOnlyList<TokenLogprobDto> Content);

public sealed record ChatChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("message")] ChatMessageDto? Message,
    [property: JsonPropertyName("delta")] ChatMessageDto? Delta,
    [property: JsonPropertyName("logprobs")] ChatLogprobsDto? Logprobs,
    [property: JsonPropertyName("finish_reason")] string? FinishReason);

public sealed record ChatCompletionResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] IReadOnlyList<ChatChoice> Choices,
    [property: JsonPropertyName("usage")] UsageDto? Usage);

/// <summary>OpenAI-compatible chat completions.</summary>
public static class ChatCompletionsApi
{
    public static RouteGroupBuilder MapChatCompletionsApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/v1/chat/completions").WithTags("Inference");
        group.MapPost("/", CreateAsync)
            .WithName("CreateChatCompletion")
            .WithSummary("Answers a chat (OpenAI /v1/chat/completions)")
            .WithDescription("The messages are rendered with the tokenizer's chat template family (ChatML, Llama 3, Llama 2, Zephyr); a tokenizer without a template, like the demo model's, gets ChatML as plain text. Generation stops at the template's end-of-turn marker. `model` picks the base or an adapter as in /v1/completions.")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .ProducesProblem(StatusCodes.Status429TooManyRequests);
        return group;
    }

    private static async Task<Results<Ok<ChatCompletionResponse>, EmptyHttpResult>> CreateAsync(ChatCompletionRequest request, InferenceService service, HttpContext http)
    {
        if (request.Messages is not { Count: > 0 } messages) throw new PeftUserException("'messages' must hold at least one message", UserErrorKind.BadRequest);
        foreach (var m in messages)
            if (m.Role is not ("system" or "user" or "assistant") || m.Content is null)
                throw new PeftUserException($"'messages': role must be system, user or assistant with a string content (got '{m.Role}')", UserErrorKind.Invalid);
        if (request.TopLogprobs is not null && request.Logprobs != true) throw new PeftUserException("'top_logprobs' needs 'logprobs': true", UserErrorKind.Invalid);
        var (prompt, endOfTurn) = service.RenderChat(messages.Select(m => new ChatMessage(m.Role, m.Content!)).ToList());
        var p = CompletionsApi.Sampling(request, service.Options, request.Logprobs == true ? request.TopLogprobs ?? 0 : null);
        p = p with { Stop = [.. p.Stop, endOfTurn] };
        int n = CompletionsApi.N(request, service.Options);
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string model = request.Model is { Length: > 0 } mm ? mm : service.ModelName;
        using var call = await GenerationCall.StartAsync(service, request.Model, null, prompt, p, n, http.RequestAborted);
        if (request.Stream != true)
        {
            var choices = await call.CompleteAsync();
            int completion = choices.Sum(c => c.Result.Tokens.Count);
            return TypedResults.Ok(new ChatCompletionResponse(id, "chat.completion", created, model,
                choices.Select(c => new ChatChoice(c.Index, new ChatMessageDto("assistant", c.Text), null, Logprobs(c, service, request),
                    CompletionsApi.Finish(c.Result.FinishReason))).ToList(),
                new UsageDto(call.PromptTokens, completion, call.PromptTokens + completion)));
        }
        Sse.Start(http.Response);
        for (int i = 0; i < n; i++)
            await Sse.WriteAsync(http.Response, Chunk(id, created, model, new ChatChoice(i, null, new ChatMessageDto("assistant", ""), null, null)), http.RequestAborted);
        await foreach (var d in call.StreamAsync(http.RequestAborted))
        {
            if (d.Text.Length == 0 && d.Final is null) continue;
            var choice = new ChatChoice(d.Index, null, new ChatMessageDto("assistant", d.Text), null,
                d.Final is { } f ? CompletionsApi.Finish(f.Result.FinishReason) : null);
            await Sse.WriteAsync(http.Response, Chunk(id, created, model, choice), http.RequestAborted);
        }
        await Sse.DoneAsync(http.Response, http.RequestAborted);
        return TypedResults.Empty;
    }

    private static ChatCompletionResponse Chunk(string id, long created, string model, ChatChoice choice) =>
        new(id, "chat.completion.chunk", created, model, [choice], null);

    private static ChatLogprobsDto? Logprobs(ChoiceOutput c, InferenceService s, ChatCompletionRequest r) => r.Logprobs != true ? null : new(
        c.Result.Tokens.Select((t, i) => new TokenLogprobDto(c.TokenTexts[i], t.Logprob,
            (t.Top ?? []).Select(x => new TopLogprobDto(s.TokenText(x.TokenId), x.Logprob)).ToList())).ToList());
}
