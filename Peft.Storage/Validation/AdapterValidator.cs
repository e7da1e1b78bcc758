using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.Configs;
using Peft.Core.IO;
using Peft.Core.Validation;
using Peft.Storage.Model;
using Peft.Storage.Services;

namespace Peft.Storage.Validation;

/// <summary>An adapter that passed every check, with what registration needs (hashes, summary, base).</summary>
public sealed record ValidatedAdapter(PeftConfig Config, byte[] ConfigBytes, string WeightsPath, SafetensorsHeaderInfo Weights,
    BaseModel BaseModel, string ConfigSha256, string WeightsSha256);

/// <summary>
/// Checks an adapter before anything is stored: sizes, adapter_config.json parsed to a supported PEFT type, the
/// safetensors header, the base model found in the catalog, and the fit to that base (targets and shapes).
/// Problems of the files are reported together; the fit check runs only on files that parsed.
/// </summary>
public sealed class AdapterValidator(BaseModelService baseModels)
{
    public async Task<ValidatedAdapter> ValidateAsync(string configPath, string weightsPath, string? baseModelName,
        UploadLimits limits, CancellationToken ct)
    {
        var configSize = new FileInfo(configPath).Length;
        if (configSize > limits.MaxConfigBytes)
            throw new CatalogValidationException("Adapter too large", [$"{AdapterArchive.ConfigFile} is {configSize} bytes, over the {limits.MaxConfigBytes}-byte limit"], UserErrorKind.TooLarge);
        var weightsSize = new FileInfo(weightsPath).Length;
        if (weightsSize > limits.MaxAdapterWeightsBytes)
            throw new CatalogValidationException("Adapter too large", [$"{AdapterArchive.WeightsFile} is {weightsSize} bytes, over the {limits.MaxAdapterWeightsBytes}-byte limit"], UserErrorKind.TooLarge);

        var problems = new List<string>();
        var configBytes = await File.ReadAllBytesAsync(configPath, ct);
        var config = ParseConfig(configBytes, problems);
        SafetensorsHeaderInfo? weights = null;
        try { weights = SafetensorsHeaderReader.Read(weightsPath); }
        catch (SafetensorsFormatException e) { problems.Add($"{AdapterArchive.WeightsFile}: {e.Reason}"); }
        if (problems.Count > 0 || config is null || weights is null) throw new CatalogValidationException("Invalid adapter", problems);

        var name = baseModelName ?? config.BaseModelNameOrPath;
        if (string.IsNullOrWhiteSpace(name))
            throw new CatalogValidationException("Invalid adapter", ["no base model: adapter_config.json has no 'base_model_name_or_path' and no 'base_model' field was given"]);
        var baseModel = await baseModels.FindForAdapterAsync(name, ct)
            ?? throw new CatalogValidationException("Unknown base model",
                [$"base model '{name}' is not registered (register it with POST /api/base-models or give field 'base_model')"]);
        var headers = await baseModels.HeadersAsync(baseModel, ct);
        var misfits = AdapterFit.Check(config, weights.Entries, headers);
        if (misfits.Count > 0)
            throw new CatalogValidationException($"Adapter does not fit base model '{baseModel.Name}'", misfits);

        return new ValidatedAdapter(config, configBytes, weightsPath, weights, baseModel,
            Hashing.Sha256(configBytes), await Hashing.Sha256FileAsync(weightsPath, ct));
    }

    private static PeftConfig? ParseConfig(byte[] bytes, List<string> problems)
    {
        const string file = AdapterArchive.ConfigFile;
        try
        {
            _ = new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            problems.Add($"{file} is not valid UTF-8");
            return null;
        }
        JsonNode? node;
        try { node = JsonNode.Parse(bytes); }
        catch (JsonException e)
        {
            problems.Add($"{file} is not valid JSON ({e.Message})");
            return null;
        }
        if (node is not JsonObject obj)
        {
            problems.Add($"{file} must be a JSON object, found {node?.GetValueKind().ToString() ?? "null"}");
            return null;
        }
        try { return PeftConfigs.Parse(obj, file); }
        catch (PeftUserException e)
        {
            problems.Add(e.Message);
            return null;
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
        {
            problems.Add($"{file}: {e.Message}");
            return null;
        }
    }
}
