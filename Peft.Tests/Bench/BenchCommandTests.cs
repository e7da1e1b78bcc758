using System.Text.Json.Nodes;
using Peft.Cli;
using Peft.Tests.Support;

namespace Peft.Tests.Bench;

/// <summary>The benchmark command runs every suite and writes well-formed output. Timings are reported, never asserted.</summary>
[Collection(nameof(NonParallel))]
public class BenchCommandTests
{
    [Fact]
    public void QuickRunProducesEverySuiteAsMarkdownAndJson()
    {
        using var tmp = new TempDir();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(["bench", "all", "--quick", "--json", tmp.Sub("bench.json"), "--markdown", tmp.Sub("bench.md")], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        var json = JsonNode.Parse(File.ReadAllText(tmp.Sub("bench.json")))!;
        Assert.True(json["quick"]!.GetValue<bool>());
        foreach (var suite in new[] { "machine", "train", "adapter", "infer", "load", "quant" })
        {
            var rows = json["suites"]![suite]!["rows"]!.AsArray();
            Assert.NotEmpty(rows);
            Assert.DoesNotContain(json["suites"]![suite]!["notes"]!.AsArray(), n => n!.GetValue<string>().Contains("Exception"));
        }
        var train = json["suites"]!["train"]!["rows"]!.AsArray();
        Assert.All(train, r => Assert.True(r!["tokens_per_s"]!.GetValue<double>() > 0));
        var lora = train.Single(r => r!["method"]!.GetValue<string>() == "lora_r8")!;
        Assert.Equal(43_008, lora["trainable"]!.GetValue<long>());
        // Quantised bases: NF4 linear weights take <= 0.16x their fp32 bytes, with double quantisation about 0.13x.
        var quant = json["suites"]!["quant"]!["rows"]!.AsArray();
        double Ratio(string b) => quant.Single(r => r!["base"]!.GetValue<string>() == b)!["linear bytes / fp32"]!.GetValue<double>();
        Assert.Equal(Peft.Bench.Suites.QuantSuite.Rows.Length, quant.Count);   // every row ran (none failed into a note)
        Assert.InRange(Ratio("nf4"), 0.14, 0.16);
        Assert.InRange(Ratio("nf4_dq"), 0.125, 0.135);
        Assert.InRange(Ratio("int8"), 0.25, 0.26);
        string md = File.ReadAllText(tmp.Sub("bench.md"));
        Assert.Contains("### Training step", md);
        Assert.Contains("| tiny10m | lora_r8 |", md);
        Assert.Equal(md.Trim(), stdout.ToString().Trim());
    }

    [Fact]
    public void UnknownSuiteIsABadInput()
    {
        var err = new StringWriter();
        Assert.Equal(2, CliApp.Run(["bench", "nope", "--quick"], new StringWriter(), err));
        Assert.Contains("unknown benchmark suite 'nope'", err.ToString());
    }
}

[CollectionDefinition(nameof(NonParallel), DisableParallelization = true)]
public sealed class NonParallel;
