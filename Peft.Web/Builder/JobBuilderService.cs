using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Peft.Core;
using Peft.Core.Data;
using Peft.Core.Models;
using Peft.Storage;
using Peft.Storage.Model;
using Peft.Storage.Services;
using Peft.Training.FineTuning;
using Peft.Training.Models;
using Peft.Training.Nn;
using TorchSharp;

namespace Peft.Web.Builder;

/// <summary>A base model as the builder offers it: catalog row plus what its folder holds (module names, family default targets).</summary>
public sealed record BuilderBase(BaseModel Model, ModelSummary Summary, long LinearWeightParameters);

/// <summary>A problem with one field; <see cref="Key"/> is the body key it concerns (as the server would name it).</summary>
public sealed record BuilderProblem(string Key, string Message);

/// <summary>
/// What the run would train and hold: the plan's exact counts (as <c>print_trainable_parameters</c>), the adapter's
/// bytes and a memory figure = frozen weights (quantised or bf16 as asked) + trainable weights, gradients and optimizer
/// state in float32. Activations depend on the batch and are not included; the page says so.
/// </summary>
public sealed record BuilderEstimate(FineTuneEstimate Counts, long FrozenWeightBytes, long TrainingStateBytes)
{
    public long MemoryBytes => FrozenWeightBytes + TrainingStateBytes;
}

/// <summary>The outcome of checking a body: every problem found (by key), and the estimate when there are none.</summary>
public sealed record BuilderCheck(IReadOnlyList<BuilderProblem> Problems, BuilderEstimate? Estimate)
{
    public bool Ok => Problems.Count == 0;
    public string? ProblemOf(string key) => Problems.FirstOrDefault(p => p.Key == key)?.Message;
}

/// <summary>A data file read as training would read it: first rows, detected format, rows and the bad lines.</summary>
public sealed record DataPreview(string FileName, string? Format, int Rows, IReadOnlyList<JsonObject> FirstRows, IReadOnlyList<string> Errors)
{
    public bool Ok => Errors.Count == 0 && Format is not null && Rows > 0;
}

/// <summary>
/// The job builder's typed service: catalog lists, base model inspection, data previews, and the same validation and
/// estimate a job gets (<see cref="FineTunePlan.Create"/> / <see cref="FineTunePlan.Estimate"/>). Heavy work (meta-device
/// builds, file parsing) runs on the thread pool, never on the circuit's thread.
/// </summary>
public sealed class JobBuilderService(BaseModelService baseModels, DatasetService datasets, IOptions<CatalogOptions> options)
{
    public const int PreviewRows = 5;
    /// <summary>Bad lines listed in a preview; the count says how many more.</summary>
    public const int MaxListedErrors = 20;
    // The job-level keys and the keys the hub fills in per job: the lists POST /api/jobs validates with.
    private static readonly string[] JobKeys = Peft.Web.Jobs.JobRequestValidator.JobKeys;
    private static readonly string[] ServerKeys = Peft.Web.Jobs.JobRequestValidator.ServerKeys;
    private static readonly ConcurrentDictionary<string, Lazy<(ModelSummary, long)>> Inspected = new();

    public Task<List<BaseModel>> BasesAsync(CancellationToken ct) => baseModels.ListAsync(ct);

    public Task<List<Dataset>> DatasetsAsync(CancellationToken ct) => datasets.ListAsync(ct);

    /// <summary>The base's module names and family default, from a meta-device build (cached per folder content).</summary>
    public async Task<BuilderBase> InspectAsync(string name, CancellationToken ct)
    {
        var model = await baseModels.GetAsync(name, ct);
        var lazy = Inspected.GetOrAdd(model.ContentSha256 + "|" + model.Folder, _ => new(() => Inspect(model.Folder)));
        var (summary, linear) = await Task.Run(() => lazy.Value, ct);
        return new BuilderBase(model, summary, linear);
    }

    private static (ModelSummary, long) Inspect(string folder)
    {
        var summary = FolderInspector.Model(folder);
        using var model = AutoModel.FromConfig(ModelConfig.FromFolder(folder), new ModelLoadOptions { Device = torch.META });
        // Quantisation replaces Linear weights only; embeddings, norms and heads stay in float32.
        long linear = model.named_modules().Where(m => m.module is LinearLayer)
            .SelectMany(m => m.module.named_parameters(recurse: false)).Where(p => p.name == "weight").Sum(p => p.parameter.numel());
        return (summary, linear);
    }

    /// <summary>Reads an uploaded data file (its extension picks the reader) and reports every bad line.</summary>
    public async Task<DataPreview> PreviewAsync(string fileName, Stream content, CancellationToken ct)
    {
        string safe = Path.GetFileName(fileName);
        string dir = Path.Combine(Path.GetTempPath(), "peft-preview-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, safe.Length > 0 ? safe : "data.txt");
        try
        {
            await using (var file = File.Create(path)) await CopyLimitedAsync(content, file, options.Value.Uploads.MaxDatasetBytes, safe, ct);
            return await Task.Run(() => Preview(safe, path), ct);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    private static async Task CopyLimitedAsync(Stream from, Stream to, long max, string name, CancellationToken ct)
    {
        var buffer = new byte[81920];
        long total = 0;
        int n;
        while ((n = await from.ReadAsync(buffer, ct)) > 0)
        {
            total += n;
            if (total > max) throw new PeftUserException($"'{name}' is larger than the dataset limit of {max >> 20} MiB", UserErrorKind.TooLarge);
            await to.WriteAsync(buffer.AsMemory(0, n), ct);
        }
    }

    private static DataPreview Preview(string name, string path)
    {
        var errors = new List<string>();
        int bad = 0;
        string Clean(string message) => message.Replace(path, name);
        List<DataRecord> rows;
        try
        {
            rows = DataFileReader.Read(path, e => { if (bad++ < MaxListedErrors) errors.Add(Clean(e.Message)); });
        }
        catch (PeftUserException e) { return new DataPreview(name, null, 0, [], [Clean(e.Message)]); }
        if (bad > MaxListedErrors) errors.Add($"… and {bad - MaxListedErrors} more bad lines");
        string? format = null;
        if (rows.Count == 0) errors.Add($"{name}: no rows");
        else
        {
            try { format = DataFormats.Detect(rows[0]).ToString(); }
            catch (DataFormatException e) { errors.Add(Clean(e.Message)); }
        }
        return new DataPreview(name, format, rows.Count, rows.Take(PreviewRows).Select(r => r.Fields).ToList(), errors);
    }

    /// <summary>Stores an uploaded file as a catalog dataset (the catalog re-reads it with the trainer's reader).</summary>
    public Task<Dataset> UploadDatasetAsync(string name, string fileName, Stream content, string? user, CancellationToken ct) =>
        datasets.UploadAsync(name, fileName, content, null, user, ct);

    /// <summary>The dataset's file on this host, for the equivalent command line.</summary>
    public async Task<string?> DatasetFileAsync(string name, CancellationToken ct)
    {
        try { return datasets.LocalPath(await datasets.GetAsync(name, ct)); }
        catch (PeftUserException) { return null; }
    }

    /// <summary>
    /// Checks a job body as a job would be checked: names in the catalog, every key's type (all reported at once),
    /// targets among the base's modules, then the plan (the first semantic problem, naming its key); with no
    /// problem, the estimate.
    /// </summary>
    public async Task<BuilderCheck> CheckAsync(JsonObject body, CancellationToken ct)
    {
        var problems = new List<BuilderProblem>();
        void Problem(string key, string message) => problems.Add(new(key, message));

        BuilderBase? baseModel = null;
        if (Text(body, "base_model") is not { } baseName) Problem("base_model", "choose a base model");
        else
        {
            try { baseModel = await InspectAsync(baseName, ct); }
            catch (PeftUserException e) { Problem("base_model", e.Message); }
        }
        string? dataFile = null;
        if (Text(body, "dataset") is not { } datasetName) Problem("dataset", "choose or upload a dataset");
        else
        {
            try { dataFile = datasets.LocalPath(await datasets.GetAsync(datasetName, ct)); }
            catch (PeftUserException e) { Problem("dataset", e.Message); }
            if (dataFile is null && problems.All(p => p.Key != "dataset")) Problem("dataset", $"dataset '{datasetName}' has no stored file");
        }
        try { CatalogNames.Check(Text(body, "adapter_name"), "adapter"); }
        catch (PeftUserException e) { Problem("adapter_name", e.Message); }

        var config = new JsonObject();
        foreach (var (rawKey, value) in body)
        {
            if (JobKeys.Contains(rawKey)) continue;
            var key = FineTuneRequest.FindKey(rawKey);
            if (key is null) { Problem(rawKey, "unknown key"); continue; }
            if (ServerKeys.Contains(key.Name)) { Problem(key.Name, "is set by the hub for every job and cannot be given"); continue; }
            try
            {
                FineTuneRequest.FromJson(new JsonObject { [key.Name] = value?.DeepClone() });
                config[key.Name] = value?.DeepClone();
            }
            catch (FineTuneRequestException e) { Problem(key.Name, e.Message); }
        }
        var method = FineTuneMethods.Find(config["method"]?.GetValue<string>() ?? "lora");
        if (method is { PeftType: null }) Problem("method", $"'{method.Name}' trains the model's own weights; the hub registers adapters (use an adapter method)");
        if (baseModel is not null && config["target_modules"] is JsonArray targets)
            foreach (var t in targets.Select(x => x!.GetValue<string>()))
                if (t != JobForm.AllLinear && !baseModel.Summary.TargetableModules.Contains(t))
                    Problem("target_modules", $"'{t}' matches no module of '{baseModel.Model.Name}' (its modules: {string.Join(", ", baseModel.Summary.TargetableModules.Order())})");
        if (problems.Count > 0 || baseModel is null) return new BuilderCheck(problems, null);

        // The plan: the same checks and counts a worker runs (data is not read; the output folder is not created).
        config["model"] = baseModel.Model.Folder;
        config["data"] = dataFile;
        config["out"] = Path.Combine(Path.GetTempPath(), "peft-builder-estimate");
        try
        {
            var request = FineTuneRequest.FromJson(config);
            var (counts, frozen, state) = await Task.Run(() =>
            {
                var plan = FineTunePlan.Create(request);
                var estimate = plan.Estimate();
                return (estimate, FrozenBytes(baseModel, estimate, request), StateBytes(estimate, request));
            }, ct);
            return new BuilderCheck([], new BuilderEstimate(counts, frozen, state));
        }
        catch (FineTuneRequestException e) { return new BuilderCheck([new(e.Key, e.Message)], null); }
        catch (PeftUserException e) { return new BuilderCheck([new("", e.Message)], null); }
    }

    /// <summary>Frozen base weights: Linear weights at the quantised width (with per-block scales), the rest bf16 or fp32.</summary>
    private static long FrozenBytes(BuilderBase b, FineTuneEstimate e, FineTuneRequest r)
    {
        long frozen = Math.Max(0, e.AllParameters - e.TrainableParameters);
        long linear = Math.Min(b.LinearWeightParameters, frozen);
        double other = r.Bf16 ? 2 : 4;
        // 4-bit: half a byte a value plus one fp32 absmax per 64-value block (double quant: one byte per block + an fp32 per 256 blocks).
        double linearBytes = r.Quantize switch
        {
            "nf4" or "fp4" => 0.5 + (r.DoubleQuant ? 1.0 / 64 + 4.0 / (64 * 256) : 4.0 / 64),
            "int8" => 1.0,
            _ => other,
        };
        return (long)(linear * linearBytes + (frozen - linear) * other);
    }

    /// <summary>Trainable weights, gradients and optimizer moments in float32 (AdamW: two moments; SGD: one with momentum).</summary>
    private static long StateBytes(FineTuneEstimate e, FineTuneRequest r)
    {
        int moments = r.Optimizer == "sgd" ? (r.Momentum != 0 ? 1 : 0) : 2;
        return e.TrainableParameters * 4L * (2 + moments);
    }

    private static string? Text(JsonObject body, string key) =>
        body[key] is JsonValue v && v.TryGetValue<string>(out var s) && !string.IsNullOrWhiteSpace(s) ? s.Trim() : null;
}
