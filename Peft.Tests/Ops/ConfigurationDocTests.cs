using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Configuration;
using Peft.Tests.Data;

namespace Peft.Tests.Ops;

/// <summary>docs/CONFIGURATION.md and appsettings.json list every setting the options classes have, with their defaults.</summary>
public sealed class ConfigurationDocTests
{
    private static readonly string Doc = File.ReadAllText(RepoFiles.Path("docs", "CONFIGURATION.md"));
    private static readonly string AppSettings = RepoFiles.Path("Peft.Web", "appsettings.json");

    /// <summary>Settings appsettings.json does not spell out: test-only fault injection.</summary>
    private static readonly string[] NotInAppSettings = ["Hub:PauseAfterBlobWriteMarker"];

    /// <summary>Where appsettings.json differs from the class on purpose: the repo's folders seen from Peft.Web/.</summary>
    private static readonly string[] RepoRelative = ["Hub:DataDir", "Hub:ModelsDir", "Hub:CorporaDir"];

    private static bool Documented(string key) => Doc.Contains($"| `{key}` |", StringComparison.Ordinal);

    private static IConfigurationRoot Settings() => new ConfigurationBuilder().AddJsonFile(AppSettings).Build();

    [Fact]
    public void Every_options_property_and_every_directly_read_key_is_documented()
    {
        var leaves = ConfigKeys.OptionLeaves().ToList();
        Assert.Contains("Hub:Uploads:MaxDatasetBytes", leaves);          // reflection reaches nested classes
        Assert.Contains("Security:RateLimits:PermitLimit", leaves);
        Assert.Contains("Serving:MaxBatchSize", leaves);
        var missing = leaves.Concat(ConfigKeys.Direct.Where(k => k != "role")).Where(k => !Documented(k)).ToList();
        Assert.True(missing.Count == 0, "not in docs/CONFIGURATION.md: " + string.Join(", ", missing));
        Assert.Contains("| `role` (command line `--role`) |", Doc);
    }

    [Fact]
    public void Appsettings_holds_every_setting_with_the_class_default_and_nothing_unknown()
    {
        var config = Settings();
        var keys = config.AsEnumerable().Select(kv => kv.Key).Where(k => !config.GetSection(k).GetChildren().Any()).ToList();
        foreach (var key in keys)
        {
            Assert.True(ConfigKeys.Problem(key) is null, $"appsettings.json: {ConfigKeys.Problem(key)}");
            bool logLevel = key.StartsWith("Logging:LogLevel:", StringComparison.Ordinal);
            // An entry of a dictionary setting (Jobs:Queues:cpu) is documented by the setting's own row.
            string? collection = ConfigKeys.OptionLeaves().FirstOrDefault(l => key.StartsWith(l + ":", StringComparison.OrdinalIgnoreCase));
            Assert.True(Documented(logLevel ? "Logging:LogLevel:*" : collection ?? key), $"appsettings.json key {key} is not in docs/CONFIGURATION.md");
        }
        var missing = ConfigKeys.OptionLeaves().Except(NotInAppSettings).Where(k => !keys.Any(key => key.Equals(k, StringComparison.OrdinalIgnoreCase) || key.StartsWith(k + ":", StringComparison.OrdinalIgnoreCase))).ToList();
        Assert.True(missing.Count == 0, "not in appsettings.json: " + string.Join(", ", missing));

        foreach (var (section, type) in ConfigKeys.Sections)
        {
            var bound = JsonSerializer.SerializeToNode(config.GetSection(section).Get(type) ?? Activator.CreateInstance(type), type)!.AsObject();
            var fresh = JsonSerializer.SerializeToNode(Activator.CreateInstance(type), type)!.AsObject();
            foreach (var key in RepoRelative.Where(k => k.StartsWith(section + ":", StringComparison.Ordinal)))
            {
                bound.Remove(key[(section.Length + 1)..]);
                fresh.Remove(key[(section.Length + 1)..]);
            }
            Assert.True(JsonNode.DeepEquals(fresh, bound), $"{section}: appsettings.json {bound} differs from the class defaults {fresh}");
        }
    }

    [Fact]
    public void The_key_check_refuses_typos_unknown_sections_and_values_that_do_not_convert()
    {
        Assert.Null(ConfigKeys.Problem("Hub:Uploads:MaxDatasetBytes"));
        Assert.Null(ConfigKeys.Problem("Jobs:Queues:gpu"));
        Assert.Contains("no property 'DatbaseProvider'", ConfigKeys.Problem("Hub:DatbaseProvider"));
        Assert.Contains("no options class", ConfigKeys.Problem("Hubb:DataDir"));
        Assert.Contains("names a section", ConfigKeys.Problem("Hub:Uploads"));
        Assert.Contains("JobsOptions has no property 'Storge'", ConfigKeys.Problem("Jobs:Storge"));
        Assert.ThrowsAny<InvalidOperationException>(() => ConfigKeys.Bind(new Dictionary<string, string?> { ["Hub:DatabaseProvider"] = "Postgress" }));
        Assert.ThrowsAny<InvalidOperationException>(() => ConfigKeys.Bind(new Dictionary<string, string?> { ["Security:RateLimits:PermitLimit"] = "many" }));
    }
}
