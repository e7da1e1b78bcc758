using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Core;

namespace Peft.Web.Serving;

/// <summary>Sampling fields shared by the OpenAI-style requests (snake_case as OpenAI spells them).</summary>
public abstract record OpenAiSamplingRequest
{
    [JsonPropertyName("model")] public string? Model { get; init; }
    [JsonPropertyName("max_tokens")] public int? MaxTokens { get; init; }
    [JsonPropertyName("temperature")] public double? Temperature { get; init; }
    [JsonPropertyName("top_p")] public double? TopP { get; init; }
    /// <summary>Extension (vLLM, TGI): keep only the k most likely tokens.</summary>
    [JsonPropertyName("top_k")] public int? TopK { get; init; }
    [JsonPropertyName("n")] public int? N { get; init; }
    [JsonPropertyName("stream")] public bool? Stream { get; init; }
    /// <summary>A string or up to 4 strings.</summary>
    [JsonPropertyName("stop")] public JsonElement? Stop { get; init; }
    [JsonPropertyName("seed")] public long? Seed { get; init; }
    [JsonPropertyName("presence_penalty")] public double? PresencePenalty { get; init; }
    [JsonPropertyName("frequency_penalty")] public double? FrequencyPenalty { get; init; }
    /// <summary>Extension (vLLM, TGI): transformers' repetition penalty.</summary>
    [JsonPropertyName("repetition_penalty")] public double? RepetitionPenalty { get; init; }

    public IReadOnlyList<string> StopList() => Stops(Stop, "stop");

    public static IReadOnlyList<string> Stops(JsonElement? stop, string field)
    {
        if (stop is not { } e || e.ValueKind == JsonValueKind.Null) return [];
        if (e.ValueKind == JsonValueKind.String) return [e.GetString()!];
        if (e.ValueKind == JsonValueKind.Array && e.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String))
        {
            var list = e.EnumerateArray().Select(x => x.GetString()!).ToList();
            if (list.Count <= 4) return list;
        }
        throw new PeftUserException($"'{field}' must be a string or an array of at most 4 strings", UserErrorKind.Invalid);
    }
}

public sealed record UsageDto(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens);

/// <summary>Problem-free JSON for server-sent events.</summary>
public static class Sse
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web);

    public static void Start(HttpResponse response)
    {
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
    }

    public static async Task WriteAsync<T>(HttpResponse response, T value, CancellationToken ct)
    {
        await response.WriteAsync("data: " + JsonSerializer.Serialize(value, Options) + "\n\n", ct);
        await response.Body.FlushAsync(ct);
    }

    public static async Task DoneAsync(HttpResponse response, CancellationToken ct)
    {
        await response.WriteAsync("data: [DONE]\n\n", ct);
        await response.Body.FlushAsync(ct);
    }
}
