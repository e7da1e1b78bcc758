using Peft.Tests.Support;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Peft.Training.IO;
using TorchSharp;

namespace Peft.Tests.Cli;

/// <summary>Bad input: exit code 2 and one stderr line naming the file, key or field at fault.</summary>
public class CliErrorTests
{
    private static readonly string LlamaBase = CliHarness.Golden("llama_base");
    private static readonly string LlamaLora = CliHarness.Golden("llama_lora");
    private static readonly string Input = CliHarness.ExpectedFile("llama_lora");

    private static CliHarness.Result Forward(string model, string output, params string[] extra) =>
        CliHarness.Run(["forward", model, .. extra, "--input", Input, "--out", output]);

    /// <summary>A copy of llama_lora whose adapter_config.json has one field replaced.</summary>
    private static string EditedAdapter(TempDir tmp, string key, JsonNode value)
    {
        string dir = CliHarness.CopyDir(LlamaLora, tmp["adapter_" + key]);
        string path = Path.Combine(dir, "adapter_config.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json[key] = value;
        File.WriteAllText(path, json.ToJsonString());
        return dir;
    }

    private static string Truncated(string source, string target)
    {
        var bytes = File.ReadAllBytes(source);
        File.WriteAllBytes(target, bytes[..(bytes.Length / 2)]);
        return target;
    }

    [Fact]
    public void MissingModelFolder()
    {
        CliHarness.Run("params", "/nonexistent/model").AssertBadInput("/nonexistent/model");
        using var tmp = new TempDir();
        Forward("/nonexistent/model", tmp["o.safetensors"]).AssertBadInput("/nonexistent/model");
        CliHarness.Run("merge", "/nonexistent/model", "--adapter", LlamaLora, "--out", tmp["m"]).AssertBadInput("/nonexistent/model");
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void MissingConfigJson()
    {
        using var tmp = new TempDir();
        CliHarness.Run("params", tmp.Path).AssertBadInput("config.json");
    }

    [Fact]
    public void UnknownModelType()
    {
        using var tmp = new TempDir();
        string model = Directory.CreateDirectory(tmp["model"]).FullName;
        File.WriteAllText(Path.Combine(model, "config.json"), "{\"model_type\": \"bart\"}");
        CliHarness.Run("params", model).AssertBadInput("model_type", "bart");
    }

    [Fact]
    public void CorruptSafetensors()
    {
        using var tmp = new TempDir();
        string input = Truncated(Input, tmp["input.safetensors"]);
        CliHarness.Run("forward", LlamaBase, "--input", input, "--out", tmp["o.safetensors"]).AssertBadInput(input);

        string model = CliHarness.CopyDir(LlamaBase, tmp["model"]);
        string weights = Path.Combine(model, "model.safetensors");
        File.Move(Truncated(weights, tmp["half"]), weights, overwrite: true);
        Forward(model, tmp["o.safetensors"]).AssertBadInput(weights);
        Assert.False(File.Exists(tmp["o.safetensors"]));
    }

    [Fact]
    public void MissingInputIds()
    {
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        string input = tmp["input.safetensors"];
        Safetensors.Save(input, [new("attention_mask", torch.ones(2, 7, torch.ScalarType.Int64))]);
        CliHarness.Run("forward", LlamaBase, "--input", input, "--out", tmp["o.safetensors"]).AssertBadInput(input, "input_ids");
    }

    [Fact]
    public void AdapterShapeDoesNotMatchBase()
    {
        using var tmp = new TempDir();
        string adapter = EditedAdapter(tmp, "r", 8); // the saved tensors have r=4
        Forward(LlamaBase, tmp["o.safetensors"], "--adapter", adapter)
            .AssertBadInput(Path.Combine(adapter, "adapter_model.safetensors"), "lora_A.weight", "[4, 64]");
    }

    [Fact]
    public void AdapterForAnotherArchitecture()
    {
        // A GPT-2 adapter targets c_attn, which a Llama model does not have.
        using var tmp = new TempDir();
        Forward(LlamaBase, tmp["o.safetensors"], "--adapter", CliHarness.Golden("gpt2_lora"))
            .AssertBadInput(Path.Combine(CliHarness.Golden("gpt2_lora"), "adapter_config.json"), "c_attn");
    }

    [Fact]
    public void UnknownTargetModule()
    {
        using var tmp = new TempDir();
        string adapter = EditedAdapter(tmp, "target_modules", new JsonArray("nope"));
        Forward(LlamaBase, tmp["o.safetensors"], "--adapter", adapter).AssertBadInput(Path.Combine(adapter, "adapter_config.json"), "nope");
        string paramCounts = Path.Combine(CliHarness.Golden("param_counts"), "tinyllama-1.1b");
        CliHarness.Run("params", paramCounts, "--adapter-config", Path.Combine(adapter, "adapter_config.json"))
            .AssertBadInput(Path.Combine(adapter, "adapter_config.json"), "nope");
    }

    [Theory]
    [InlineData("r", 0, "'r'")]
    [InlineData("lora_dropout", 1.5, "'lora_dropout'")]
    public void InvalidConfigValue(string key, double value, string field)
    {
        using var tmp = new TempDir();
        string adapter = EditedAdapter(tmp, key, JsonValue.Create(value)!);
        string config = Path.Combine(adapter, "adapter_config.json");
        CliHarness.Run("params", LlamaBase, "--adapter-config", config).AssertBadInput(config, field);
        Forward(LlamaBase, tmp["o.safetensors"], "--adapter", adapter).AssertBadInput(config, field);
        CliHarness.Run("merge", LlamaBase, "--adapter", adapter, "--out", tmp["m"]).AssertBadInput(config, field);
    }

    [Fact]
    public void AdapterNamesCountMustMatchBatch()
    {
        using var tmp = new TempDir();
        Forward(LlamaBase, tmp["o.safetensors"], "--adapter", LlamaLora, "--adapter-names", "llama_lora,__base__,llama_lora")
            .AssertBadInput("--adapter-names", "3", "2 rows");
    }

    [Fact]
    public void UnknownAdapterName()
    {
        using var tmp = new TempDir();
        Forward(LlamaBase, tmp["o.safetensors"], "--adapter", LlamaLora, "--adapter-names", "llama_lora,other")
            .AssertBadInput("--adapter-names", "'other'");
    }

    [Fact]
    public void BadWeights()
    {
        using var tmp = new TempDir();
        string[] common = ["combine", LlamaBase, "--adapter", LlamaLora, "--adapter", "b=" + LlamaLora, "--combination-type", "cat", "--out", tmp["c"]];
        CliHarness.Run([.. common, "--weights", "1"]).AssertBadInput("--weights", "1 values", "2 adapters");
        CliHarness.Run([.. common, "--weights", "1,x"]).AssertBadInput("--weights", "'x'");
        CliHarness.Run([.. common[..6], "--combination-type", "ties", "--weights", "1,1", "--out", tmp["c"]]).AssertBadInput("--density");
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void UsageErrors()
    {
        CliHarness.Run().AssertBadInput();
        CliHarness.Run("params").AssertBadInput("model_dir");
        CliHarness.Run("forward", LlamaBase, "--out", "x.safetensors").AssertBadInput("--input");
        CliHarness.Run("combine", LlamaBase, "--adapter", LlamaLora, "--weights", "1", "--combination-type", "avg", "--out", "x").AssertBadInput("avg");
        CliHarness.Run("frobnicate").AssertBadInput("frobnicate");
        var help = CliHarness.Run("forward", "--help");
        help.AssertOk();
        Assert.Contains("--adapter-names", help.Out);
    }

    /// <summary>The built executable itself (not just <c>CliApp.Run</c>) reports bad input with process exit code 2.</summary>
    [Fact]
    public async Task ExecutableExitsWithCode2()
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "peft.dll");
        Assert.True(File.Exists(dll), $"{dll} not found");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { dll, "params", "/nonexistent/model" }) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        Assert.Equal(2, process.ExitCode);
        Assert.Equal("", await stdout);
        Assert.Equal("error: /nonexistent/model: model folder not found", (await stderr).Trim());
    }
}
