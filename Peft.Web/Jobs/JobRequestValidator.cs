using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.Configs;
using Peft.Core.Data;
using Peft.Storage.Blobs;
using Peft.Storage.Model;
using Peft.Storage.Services;
using Peft.Training.Data;
using Peft.Training.FineTuning;

namespace Peft.Web.Jobs;

/// <summary>A job request that passed every check, with the catalog rows it names.</summary>
public sealed record ValidatedJob(BaseModel BaseModel, Dataset Dataset, string AdapterName, string Method, JsonObject Config,
    string Queue, int Priority, string? SubmittedBy, AdapterVersion? Parent);

/// <summary>
/// Checks a job request before anything is queued. The training keys go through the one validation path
/// <c>peft train</c> uses (<see cref="FineTuneRequest.FromJson"/> then <see cref="FineTunePlan.Create"/>, on the base's
/// folder and the dataset's file); this class adds only what the hub knows: catalog names, the base model's real module
/// names and the dataset's format. Shape/type problems are 400, unknown names 404, values the plan, base or dataset
/// refuse 422.
/// </summary>
public sealed class JobRequestValidator(BaseModelService baseModels, DatasetService datasets, AdapterCatalog catalog, IBlobStore blobs)
{
    /// <summary>Job-level keys; every other key is a <see cref="FineTuneRequest"/> key.</summary>
    /// <summary><c>parent</c>: a catalog version (<c>name@n</c> or <c>name@alias</c>) to continue training (the hub's <c>init_adapter</c>).</summary>
    public static readonly string[] JobKeys = ["base_model", "dataset", "adapter_name", "queue", "priority", "parent"];

    /// <summary>Request keys the hub fills in itself (paths on the worker, resume) — a client cannot set them.</summary>
    public static readonly string[] ServerKeys = ["model", "tokenizer", "data", "eval_data", "out", "resume", "init_adapter"];

    public static readonly string[] KnownQueues = ["cpu", "gpu"];

    private static readonly Dictionary<string, int> Priorities = new(StringComparer.OrdinalIgnoreCase) { ["high"] = 1, ["normal"] = 0, ["low"] = -1 };

    public async Task<ValidatedJob> ValidateAsync(JsonNode? body, string? submittedBy, CancellationToken ct)
    {
        if (body is not JsonObject request) throw Bad("the request body must be a JSON object");
        string baseName = RequiredString(request, "base_model");
        string datasetName = RequiredString(request, "dataset");
        string adapterName = CatalogNames.Check(OptionalString(request, "adapter_name") ?? throw Bad("adapter_name: is required"), "adapter");
        string queue = OptionalString(request, "queue") ?? "cpu";
        if (!KnownQueues.Contains(queue)) throw Bad($"queue: unknown queue '{queue}' (expected {string.Join(", ", KnownQueues)})");
        string priorityName = OptionalString(request, "priority") ?? "normal";
        if (!Priorities.TryGetValue(priorityName, out int priority)) throw Bad($"priority: expected high, normal or low, got '{priorityName}'");

        var config = new JsonObject();
        foreach (var (key, value) in request)
        {
            if (JobKeys.Contains(key)) continue;
            string canonical = FineTuneRequest.FindKey(key)?.Name ?? key;
            if (ServerKeys.Contains(canonical)) throw Bad($"{key}: is set by the hub for every job and cannot be given");
            config[canonical] = value?.DeepClone();
        }
        // Unknown keys and mistyped values: 400, named as the request spelled them.
        var parsed = FineTuneRequest.FromJson(config);

        var baseModel = await baseModels.GetAsync(baseName, ct);
        var dataset = await datasets.GetAsync(datasetName, ct);
        string dataFile = datasets.LocalPath(dataset) ?? throw new PeftUserException($"dataset '{dataset.Name}' has no stored file", UserErrorKind.Invalid);
        AdapterVersion? parent = null;
        if (OptionalString(request, "parent") is { } parentRef)
        {
            parent = await catalog.ResolveAsync(parentRef, ct);
            if (parent.Adapter.BaseModel.Name != baseModel.Name)
                throw new PeftUserException($"parent: '{parentRef}' was trained on base model '{parent.Adapter.BaseModel.Name}', not '{baseModel.Name}'");
        }

        // Every training key checked exactly as the CLI checks it (the output folder is only named, never written).
        var scratch = Path.Combine(Path.GetTempPath(), "peft-job-validation", Guid.NewGuid().ToString("N"));
        FineTunePlan plan;
        try
        {
            string? init = parent is null ? null : await ParentAdapter.MaterializeAsync(parent, blobs, Path.Combine(scratch, "parent"), ct);
            plan = FineTunePlan.Create(parsed with { Model = baseModel.Folder, Data = dataFile, Out = Path.Combine(scratch, "out"), InitAdapter = init });
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
        if (plan.Method.PeftType is null)
            throw new PeftUserException($"method: '{plan.Method.Name}' trains the model's own weights; the hub registers adapters (use an adapter method)");
        var headers = await baseModels.HeadersAsync(baseModel, ct);
        CheckTargets(parsed.TargetModules, headers.Weights.Select(w => w.Name), baseModel.Name);
        var format = plan.Data.Format != DataFormat.Auto ? plan.Data.Format : FineTunePlan.ParseFormat(dataset.Format);
        if (format is DataFormat f and not DataFormat.Auto) DatasetBuilder.CheckTask(f, plan.Task, $"dataset '{dataset.Name}'");
        return new ValidatedJob(baseModel, dataset, adapterName, plan.Method.Name, config, queue, priority, submittedBy, parent);
    }

    /// <summary>Every named target module must exist in the base model (PEFT's list semantics: exact key or suffix).</summary>
    private static void CheckTargets(IReadOnlyList<string>? targets, IEnumerable<string> weightNames, string baseName)
    {
        if (targets is not { Count: > 0 } || targets is ["all-linear"]) return;
        var modules = weightNames.Where(n => n.EndsWith(".weight", StringComparison.Ordinal)).Select(n => n[..^".weight".Length]).ToList();
        foreach (var t in targets)
            if (!modules.Any(m => TargetMatching.MatchesList([t], m)))
            {
                var names = modules.Select(m => m[(m.LastIndexOf('.') + 1)..]).Distinct().Order();
                throw new PeftUserException($"target_modules: '{t}' matches no module of '{baseName}' (its modules: {string.Join(", ", names)})");
            }
    }

    private static string RequiredString(JsonObject o, string key) =>
        OptionalString(o, key) is { Length: > 0 } s ? s : throw Bad($"{key}: is required");

    private static string? OptionalString(JsonObject o, string key) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        var other => throw Bad($"{key}: expected a string, got {other.ToJsonString()}"),
    };

    private static PeftUserException Bad(string message) => new(message, UserErrorKind.BadRequest);
}
