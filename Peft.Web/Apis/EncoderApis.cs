using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using Peft.Core;
using Peft.Web.Serving;

namespace Peft.Web.Apis;

/// <summary>Body of <c>/v1/embeddings</c> and <c>/v1/classify</c>: <c>input</c> is a string, strings, token ids, or lists of token ids.</summary>
public sealed record EncoderRequest
{
    [JsonPropertyName("model")] public string? Model { get; init; }
    [JsonPropertyName("input")] public JsonElement Input { get; init; }
    /// <summary>Embeddings only: "float" (the default); base64 is not offered.</summary>
    [JsonPropertyName("encoding_format")] public string? EncodingFormat { get; init; }
}

public sealed record EncoderUsage(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens);

public sealed record EmbeddingItem(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("embedding")] float[] Embedding);

public sealed record EmbeddingResponse(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] IReadOnlyList<EmbeddingItem> Data,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("usage")] EncoderUsage Usage);

/// <summary>One input's result, as vLLM's <c>/classify</c> shapes it, plus the probability of each label by name.</summary>
public sealed record ClassificationItem(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("label")] string Label,
    [property: JsonPropertyName("probs")] float[] Probs,
    [property: JsonPropertyName("num_classes")] int NumClasses,
    [property: JsonPropertyName("labels")] IReadOnlyDictionary<string, float> Labels);

public sealed record ClassificationResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("data")] IReadOnlyList<ClassificationItem> Data,
    [property: JsonPropertyName("usage")] EncoderUsage Usage);

/// <summary>Encoder endpoints: OpenAI-shaped embeddings and vLLM-shaped sequence classification, on the bases of Serving:Encoders.</summary>
public static class EncoderApis
{
    public const int MaxInputs = 256;

    public static IEndpointRouteBuilder MapEncoderApis(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/v1/embeddings", EmbedAsync).WithTags("Inference")
            .WithName("CreateEmbeddings")
            .WithSummary("Embeds texts or token ids (OpenAI /v1/embeddings)")
            .WithDescription("`model` is an encoder base of `Serving:Encoders` or an adapter for one (`name`, `name@3`, `name@alias`). Each vector is the mean of the last hidden state over the input's tokens, L2-normalised. `input` is a string, an array of strings, an array of token ids or an array of such arrays (at most 256). Unknown model 404, adapter for another base 409.")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity);
        routes.MapPost("/v1/classify", ClassifyAsync).WithTags("Inference")
            .WithName("Classify")
            .WithSummary("Label probabilities from a sequence-classification adapter or base")
            .WithDescription("`model` is a SEQ_CLS adapter (`name`, `name@3`, `name@alias`) for an encoder base of `Serving:Encoders`, or such a base with its own head. Each input gets the softmax of the classification head's logits (`probs`, in label order), the most likely `label`, and `labels` by name (config.json id2label). `input` as for /v1/embeddings.")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity);
        return routes;
    }

    private static async Task<Ok<EmbeddingResponse>> EmbedAsync(EncoderRequest request, EncoderModels encoders, HttpContext http)
    {
        if (request.EncodingFormat is { } f && f != "float")
            throw new PeftUserException($"'encoding_format' '{f}' is not offered; use \"float\"", UserErrorKind.Invalid);
        var (host, lease) = await encoders.ResolveAsync(request.Model, http.RequestAborted);
        using (lease)
        {
            var inputs = Inputs(request.Input, host);
            var vectors = await host.Engine.EmbedAsync(inputs, lease, http.RequestAborted);
            int tokens = inputs.Sum(i => i.Count);
            return TypedResults.Ok(new EmbeddingResponse("list", vectors.Select((v, i) => new EmbeddingItem("embedding", i, v)).ToList(),
                request.Model is { Length: > 0 } m ? m : host.Name, new EncoderUsage(tokens, tokens)));
        }
    }

    private static async Task<Ok<ClassificationResponse>> ClassifyAsync(EncoderRequest request, EncoderModels encoders, HttpContext http)
    {
        var (host, lease) = await encoders.ResolveAsync(request.Model, http.RequestAborted);
        using (lease)
        {
            var inputs = Inputs(request.Input, host);
            var scores = await host.Engine.ClassifyAsync(inputs, lease, http.RequestAborted);
            int tokens = inputs.Sum(i => i.Count);
            var items = scores.Select((s, i) =>
            {
                int best = Array.IndexOf(s.Probabilities, s.Probabilities.Max());
                return new ClassificationItem(i, s.Labels[best], s.Probabilities, s.Probabilities.Length,
                    s.Labels.Select((l, j) => (l, j)).ToDictionary(x => x.l, x => s.Probabilities[x.j]));
            }).ToList();
            return TypedResults.Ok(new ClassificationResponse("classify-" + Guid.NewGuid().ToString("N"), "list",
                DateTimeOffset.UtcNow.ToUnixTimeSeconds(), request.Model is { Length: > 0 } m ? m : host.Name, items, new EncoderUsage(tokens, tokens)));
        }
    }

    /// <summary>The request's inputs as token lists (texts through the base's tokenizer).</summary>
    internal static List<IReadOnlyList<int>> Inputs(JsonElement input, EncoderHost host)
    {
        const string shape = "'input' must be a string, an array of strings, an array of token ids or an array of arrays of token ids";
        List<IReadOnlyList<int>> list = input.ValueKind switch
        {
            JsonValueKind.String => [host.Encode(input.GetString()!)],
            JsonValueKind.Array when input.GetArrayLength() == 0 => throw new PeftUserException("'input' is empty", UserErrorKind.BadRequest),
            JsonValueKind.Array when input.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) =>
                input.EnumerateArray().Select(e => host.Encode(e.GetString()!)).ToList(),
            JsonValueKind.Array when input.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number) => [Ids(input)],
            JsonValueKind.Array when input.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Array) =>
                input.EnumerateArray().Select(e => (IReadOnlyList<int>)Ids(e)).ToList(),
            JsonValueKind.Undefined or JsonValueKind.Null => throw new PeftUserException("'input' is required", UserErrorKind.BadRequest),
            _ => throw new PeftUserException(shape, UserErrorKind.Invalid),
        };
        if (list.Count > MaxInputs) throw new PeftUserException($"'input' has {list.Count} entries; at most {MaxInputs}", UserErrorKind.Invalid);
        return list;

        static List<int> Ids(JsonElement a) => a.EnumerateArray()
            .Select(x => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out int v) ? v : throw new PeftUserException(shape, UserErrorKind.Invalid))
            .ToList();
    }
}
