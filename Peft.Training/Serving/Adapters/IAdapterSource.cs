using System.Text.RegularExpressions;
using Peft.Core;

namespace Peft.Training.Serving.Adapters;

/// <summary>
/// Where an adapter reference (<c>name</c>, <c>name@3</c>, <c>name@alias</c>) points: a folder with adapter_config.json +
/// adapter_model.safetensors, and a version identity (two resolutions with equal <see cref="Key"/> are the same weights).
/// <see cref="BaseModel"/> is the base the source says it belongs to (the catalog knows it; null = check the config).
/// </summary>
public sealed record AdapterLocation(string Name, string Version, string Folder, string? BaseModel = null)
{
    public string Key => $"{Name}@{Version}";
}

/// <summary>
/// Resolves adapter references for the server. Kept small so the catalog (Peft.Storage) can implement it; the folder
/// source below is the local one. Implementations throw <see cref="PeftUserException"/> with
/// <see cref="UserErrorKind.NotFound"/> for an unknown name, version or alias.
/// </summary>
public interface IAdapterSource
{
    ValueTask<AdapterLocation> ResolveAsync(AdapterReference reference, CancellationToken ct);

    /// <summary>Every adapter name with the version a bare name resolves to now (for <c>GET /v1/models</c>).</summary>
    ValueTask<IReadOnlyList<AdapterLocation>> ListAsync(CancellationToken ct);
}

/// <summary>A parsed <c>name[@version|@alias]</c>.</summary>
public sealed partial record AdapterReference(string Name, string? Selector)
{
    public bool IsVersion => Selector is not null && Selector.All(char.IsAsciiDigit);

    public override string ToString() => Selector is null ? Name : $"{Name}@{Selector}";

    /// <summary>Parses a reference; names and selectors are [A-Za-z0-9._-] (no paths), else a 400.</summary>
    public static AdapterReference Parse(string text)
    {
        var m = Pattern().Match(text ?? "");
        if (!m.Success || m.Groups["name"].Value is "." or "..")
            throw new PeftUserException($"adapter reference '{text}' is not of the form name, name@VERSION or name@ALIAS (letters, digits, '.', '_', '-')", UserErrorKind.BadRequest);
        return new AdapterReference(m.Groups["name"].Value, m.Groups["sel"].Success ? m.Groups["sel"].Value : null);
    }

    [GeneratedRegex(@"^(?<name>[A-Za-z0-9_][A-Za-z0-9._-]{0,127})(@(?<sel>[A-Za-z0-9_][A-Za-z0-9._-]{0,63}))?$")]
    private static partial Regex Pattern();
}
