using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Peft.Web.Infrastructure;

/// <summary>
/// Examples for the main calls in the OpenAPI document (the Scalar page shows them and pre-fills its request builder):
/// completions, chat, generate, adapter upload (a multipart form the handler reads itself, so described here) and
/// download, job submission. Keyed by operation id (the endpoint's WithName).
/// </summary>
internal static class OpenApiExamples
{
    private static readonly Dictionary<string, Func<JsonNode>> JsonBodies = new()
    {
        ["CreateCompletion"] = () => new JsonObject { ["model"] = "austen-lora", ["prompt"] = "It is a truth universally acknowledged", ["max_tokens"] = 32, ["temperature"] = 0.7 },
        ["CreateChatCompletion"] = () => new JsonObject
        {
            ["model"] = "austen-lora",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Describe Mr Darcy in one sentence." }),
            ["max_tokens"] = 48,
        },
        ["Generate"] = () => new JsonObject { ["inputs"] = "It is a truth", ["parameters"] = new JsonObject { ["adapter_id"] = "austen-lora", ["max_new_tokens"] = 32 } },
        // POST /api/jobs: the job keys plus any key of docs/FINE-TUNING.md.
        ["SubmitJob"] = () => new JsonObject
        {
            ["base_model"] = "peft-demo",
            ["dataset"] = "austen",
            ["adapter_name"] = "austen-lora",
            ["queue"] = "cpu",
            ["priority"] = "normal",
            ["method"] = "lora",
            ["r"] = 8,
            ["lora_alpha"] = 16,
            ["target_modules"] = "q_proj,v_proj",
            ["learning_rate"] = 0.0002,
            ["max_steps"] = 200,
            ["batch_size"] = 8,
        },
    };

    public static Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        string? id = operation.OperationId;
        if (id is null) return Task.CompletedTask;
        if (JsonBodies.TryGetValue(id, out var body))
        {
            var request = operation.RequestBody as OpenApiRequestBody ?? new OpenApiRequestBody { Required = true };
            request.Content ??= new Dictionary<string, OpenApiMediaType>();
            if (!request.Content.TryGetValue("application/json", out var media))
                request.Content["application/json"] = media = new OpenApiMediaType();
            media.Example = body();
            operation.RequestBody = request;
        }
        else if (id == "UploadAdapterVersion")
        {
            operation.RequestBody = Multipart(
                ("adapter_config", Binary("adapter_config.json (PEFT's format)")),
                ("adapter_model", Binary("adapter_model.safetensors")),
                ("file", Binary("instead of the two files: a zip in the HF PEFT layout")),
                ("base_model", Text("catalog base model; default: the config's base_model_name_or_path")),
                ("description", Text("free text")),
                ("tags", Text("comma-separated, e.g. austen,lora")),
                ("metrics", Text("JSON object of numbers, e.g. {\"eval_loss\": 2.31}")),
                ("parent", Text("lineage, name@version")));
        }
        else if (id == "DownloadAdapterVersion" && operation.Parameters is { } parameters)
        {
            foreach (var p in parameters.OfType<OpenApiParameter>())
                p.Example = p.Name switch
                {
                    "name" => "austen-lora",
                    "version" => "production",
                    "file" => "adapter_model.safetensors",
                    _ => p.Example,
                };
        }
        return Task.CompletedTask;
    }

    private static OpenApiSchema Binary(string description) => new() { Type = JsonSchemaType.String, Format = "binary", Description = description };
    private static OpenApiSchema Text(string description) => new() { Type = JsonSchemaType.String, Description = description };

    private static OpenApiRequestBody Multipart(params (string Name, OpenApiSchema Schema)[] fields) => new()
    {
        Required = true,
        Content = new Dictionary<string, OpenApiMediaType>
        {
            ["multipart/form-data"] = new()
            {
                Schema = new OpenApiSchema
                {
                    Type = JsonSchemaType.Object,
                    Properties = fields.ToDictionary(f => f.Name, f => (IOpenApiSchema)f.Schema),
                },
            },
        },
    };
}
