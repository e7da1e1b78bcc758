using System.Collections;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace Peft.Tests.Ops;

/// <summary>
/// The configuration keys the app reads: every options class (a type with a <c>Section</c> constant in Peft.Web or
/// Peft.Storage, found by reflection, so a new option is covered) plus the keys read straight from IConfiguration.
/// </summary>
internal static class ConfigKeys
{
    /// <summary>Keys read through IConfiguration rather than an options class.</summary>
    public static readonly string[] Direct =
    [
        "Hub:AdminPassword", "Hub:BootstrapApiKey", "ConnectionStrings:Catalog", "ConnectionStrings:Hangfire", "role",
    ];

    /// <summary>Framework sections whose keys belong to ASP.NET Core / .NET (validated by them, documented there).</summary>
    private static readonly string[] FrameworkSections = ["Logging", "Kestrel", "AllowedHosts"];

    public static IReadOnlyDictionary<string, Type> Sections { get; } = typeof(Program).Assembly.GetTypes()
        .Concat(typeof(Peft.Storage.CatalogOptions).Assembly.GetTypes())
        .Select(t => (Type: t, Field: t.GetField("Section", BindingFlags.Public | BindingFlags.Static)))
        .Where(x => x.Field is { IsLiteral: true } && x.Type.Name.EndsWith("Options", StringComparison.Ordinal))
        .ToDictionary(x => (string)x.Field!.GetRawConstantValue()!, x => x.Type, StringComparer.OrdinalIgnoreCase);

    /// <summary>Leaf keys of every options class, e.g. <c>Hub:Uploads:MaxDatasetBytes</c>.</summary>
    public static IEnumerable<string> OptionLeaves() => Sections.SelectMany(s => Leaves(s.Key, s.Value));

    private static IEnumerable<string> Leaves(string prefix, Type type)
    {
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
        {
            if (IsComplex(p.PropertyType)) foreach (var leaf in Leaves($"{prefix}:{p.Name}", p.PropertyType)) yield return leaf;
            else yield return $"{prefix}:{p.Name}";
        }
    }

    private static bool IsComplex(Type t) => t.IsClass && t != typeof(string) && !typeof(IEnumerable).IsAssignableFrom(t);

    /// <summary>Null when the app reads <paramref name="key"/> (':'-separated); else why not.</summary>
    public static string? Problem(string key)
    {
        if (Direct.Contains(key, StringComparer.OrdinalIgnoreCase)) return null;
        var parts = key.Split(':');
        if (FrameworkSections.Contains(parts[0], StringComparer.OrdinalIgnoreCase)) return null;
        if (!Sections.TryGetValue(parts[0], out var type)) return $"'{key}': no options class binds section '{parts[0]}'";
        foreach (var part in parts.Skip(1))
        {
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>)) return null;   // any entry name
            if (type.IsArray) return null;
            var property = type.GetProperty(part, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is null) return $"'{key}': {type.Name} has no property '{part}'";
            type = property.PropertyType;
        }
        return IsComplex(type) ? $"'{key}' names a section, not a setting" : null;
    }

    /// <summary>Binds the settings to their options classes as the app does, failing on values that do not convert.</summary>
    public static void Bind(IReadOnlyDictionary<string, string?> settings)
    {
        var config = new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Where(kv => !Direct.Contains(kv.Key, StringComparer.OrdinalIgnoreCase)))
            .Build();
        foreach (var (section, type) in Sections)
            config.GetSection(section).Get(type, o => o.ErrorOnUnknownConfiguration = true);
    }
}
