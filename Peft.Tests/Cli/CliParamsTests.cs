using System.Globalization;
using System.Text.Json.Nodes;
using Peft.Training.Tuners;

namespace Peft.Tests.Cli;

/// <summary><c>peft params</c> against the real-size counts PEFT printed (Golden/param_counts), built on the meta device.</summary>
public class CliParamsTests
{
    /// <summary>Row of param_counts.json whose label starts with <paramref name="labelPrefix"/>.</summary>
    private static (long Base, long Trainable, long All) Row(string labelPrefix)
    {
        var json = JsonNode.Parse(File.ReadAllText(CliHarness.Golden("param_counts", "param_counts.json")))!;
        var row = json["rows"]!.AsArray().Single(r => r!["label"]!.GetValue<string>().StartsWith(labelPrefix, StringComparison.Ordinal))!;
        return (row["base_params"]!.GetValue<long>(), row["trainable_params"]!.GetValue<long>(), row["all_params"]!.GetValue<long>());
    }

    [Theory]
    [InlineData("gpt2", "gpt2 (124M")]
    [InlineData("tinyllama-1.1b", "TinyLlama-1.1B")]
    [InlineData("bloomz-560m", "bloomz-560m")]
    public void CountsMatchPeft(string folder, string labelPrefix)
    {
        var (baseCount, trainable, all) = Row(labelPrefix);
        string dir = Path.Combine(CliHarness.Golden("param_counts"), folder);

        var plain = CliHarness.Run("params", dir);
        plain.AssertOk();
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"base params: {baseCount:N0}"), plain.Out);
        Assert.DoesNotContain("trainable", plain.Out);

        var withAdapter = CliHarness.Run("params", dir, "--adapter-config", Path.Combine(dir, "adapter_config.json"));
        withAdapter.AssertOk();
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"base params: {baseCount:N0}"), withAdapter.Out);
        Assert.Contains(PeftModel.FormatSummary(trainable, all), withAdapter.Out);
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"trainable params: {trainable:N0} || all params: {all:N0} || trainable%: "), withAdapter.Out);
    }

    [Fact]
    public void AdapterConfigFolderIsAccepted()
    {
        string dir = Path.Combine(CliHarness.Golden("param_counts"), "gpt2");
        var r = CliHarness.Run("params", dir, "--adapter-config", dir);
        r.AssertOk();
        Assert.Contains("trainable params: 294,912 ", r.Out);
    }
}
