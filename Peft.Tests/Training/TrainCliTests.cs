using Peft.Tests.Support;
using System.CommandLine;
using System.Text.Json.Nodes;
using Peft.Cli.Commands;
using Peft.Training.Training;

namespace Peft.Tests.Training;

/// <summary>A tiny model folder (config, weights, byte-level tokenizer) and training text shared by the CLI tests.</summary>
public sealed class CliModelFixture : IDisposable
{
    private readonly TempDir _dir = new();

    public CliModelFixture()
    {
        Directory.CreateDirectory(ModelDir);
        TinyModels.SaveModelFolder(ModelDir);
        // A short slice of the English text keeps each CLI run to a few steps.
        File.WriteAllText(Data, string.Join("\n\n", File.ReadAllText(TinyModels.Text("english-train.txt")).Split("\n\n").Take(6)));
    }

    public string ModelDir => _dir.File("model");
    public string Data => _dir.File("train.txt");
    public string Scratch(string name) => _dir.File(name);
    public void Dispose() => _dir.Dispose();
}

/// <summary><c>peft train</c> end to end: JSON events, exit codes for bad input, config files, resume.</summary>
public class TrainCliTests(CliModelFixture fx) : IClassFixture<CliModelFixture>
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var root = new RootCommand();
        root.Subcommands.Add(TrainCommand.Create());
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = root.Parse(["train", .. args]).Invoke(new InvocationConfiguration { Output = stdout, Error = stderr });
        return (code, stdout.ToString(), stderr.ToString());
    }

    private string[] Basic(string outDir, params string[] extra) =>
        ["--model", fx.ModelDir, "--data", fx.Data, "--method", "lora", "--block-size", "32", "--batch-size", "4", "--lr", "1e-3", "--out", outDir, .. extra];

    private static List<JsonObject> Events(string stdout) =>
        stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => (JsonObject)JsonNode.Parse(l)!).ToList();

    [Fact]
    public void JsonEventsReportEveryStepAndTheAdapterIsSaved()
    {
        string outDir = fx.Scratch("json-run");
        var (code, stdout, stderr) = Run(Basic(outDir, "--max-steps", "3", "--json-events", "--r", "4", "--target-modules", "q_proj,v_proj", "--scheduler", "cosine", "--warmup", "1"));
        Assert.True(code == 0, stderr);
        var events = Events(stdout);
        var steps = events.Where(e => e["type"]!.GetValue<string>() == "step").ToList();
        Assert.Equal([1, 2, 3], steps.Select(e => e["step"]!.GetValue<int>()));
        Assert.All(steps, e => Assert.True(e["loss"]!.GetValue<double>() > 0 && e.ContainsKey("lr") && e.ContainsKey("grad_norm") && e.ContainsKey("eta_s")));
        Assert.Equal(0.0, steps[0]["lr"]!.GetValue<double>()); // first warmup step, as transformers
        Assert.Equal("done", events[^1]["type"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(outDir, "adapter_model.safetensors")));
        var config = PeftConfigs.Load(outDir);
        Assert.Equal("LORA", config.PeftType);
        Assert.Equal(4, ((LoraConfig)config).R);
        Assert.Null(CheckpointStore.Incomplete(Path.Combine(outDir, "checkpoint-3")));
    }

    [Theory]
    [InlineData("--method", "bogus", "--method: unknown method 'bogus'")]
    [InlineData("--lr", "fast", "--lr: expected a number, got 'fast'")]
    [InlineData("--scheduler", "step", "--scheduler: unknown scheduler 'step'")]
    [InlineData("--batch-size", "0", "--batch-size: must be positive")]
    [InlineData("--r", "-1", "--r: must be a positive integer")]
    [InlineData("--target-modules", "nope", "Target modules [nope] not found")]
    [InlineData("--frobnicate", "1", "unknown argument '--frobnicate'")]
    public void BadInputExitsWithCode2AndOneLine(string flag, string value, string message)
    {
        var (code, _, stderr) = Run(Basic(fx.Scratch("bad-" + Guid.NewGuid().ToString("N")), flag, value, "--max-steps", "1"));
        Assert.Equal(2, code);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(message, line);
    }

    [Fact]
    public void MissingFilesAndBadRowsNameTheFile()
    {
        var (code, _, err) = Run("--model", fx.ModelDir, "--data", "/no/such.jsonl", "--out", fx.Scratch("x"));
        Assert.Equal(2, code);
        Assert.Contains("--data: file not found: /no/such.jsonl", err);
        string bad = fx.Scratch("bad.jsonl");
        File.WriteAllText(bad, "{\"text\": \"ok\"}\n{oops}\n");
        (code, _, err) = Run("--model", fx.ModelDir, "--data", bad, "--out", fx.Scratch("y"));
        Assert.Equal(2, code);
        Assert.Contains($"{bad}:2: invalid JSON", err);
        (code, _, err) = Run("--data", fx.Data, "--out", fx.Scratch("z"));
        Assert.Equal(2, code);
        Assert.Contains("--model: is required", err);
    }

    [Fact]
    public void ConfigFileSuppliesSettingsAndNamesBadFields()
    {
        string outDir = fx.Scratch("config-run");
        string cfg = fx.Scratch("train.json");
        File.WriteAllText(cfg, new JsonObject
        {
            ["model"] = fx.ModelDir, ["data"] = fx.Data, ["method"] = "dora", ["r"] = 2, ["lora_alpha"] = 4, ["max_steps"] = 2,
            ["block-size"] = 32, ["batch_size"] = 4, ["out"] = outDir, ["json_events"] = true, ["target_modules"] = new JsonArray("q_proj"),
        }.ToJsonString());
        var (code, stdout, stderr) = Run("--config", cfg, "--lr", "5e-4");
        Assert.True(code == 0, stderr);
        var first = Events(stdout).First(e => e["type"]!.GetValue<string>() == "step");
        Assert.Equal(5e-4, first["lr"]!.GetValue<double>(), 12);
        Assert.True(((LoraConfig)PeftConfigs.Load(outDir)).UseDora);

        File.WriteAllText(cfg, """{"model": "m", "data": "d", "out": "o", "lora_alpha": "big"}""");
        (code, _, stderr) = Run("--config", cfg);
        Assert.Equal(2, code);
        Assert.Contains($"{cfg}: field 'lora_alpha': expected a number, got 'big'", stderr);
        File.WriteAllText(cfg, """{"learn_rate": 1}""");
        (code, _, stderr) = Run("--config", cfg);
        Assert.Equal(2, code);
        Assert.Contains($"{cfg}: field 'learn_rate': unknown key", stderr);
    }

    [Fact]
    public void ResumeContinuesFromTheLastCheckpoint()
    {
        string outDir = fx.Scratch("resume-run");
        var (code, _, stderr) = Run(Basic(outDir, "--max-steps", "2", "--save-every", "1", "--json-events", "--r", "2"));
        Assert.True(code == 0, stderr);
        // The adapter shape comes from the checkpoint: --r need not be repeated.
        (code, var stdout, stderr) = Run(Basic(outDir, "--max-steps", "4", "--json-events", "--resume", outDir, "--gradient-checkpointing"));
        Assert.True(code == 0, stderr);
        Assert.Equal([3, 4], Events(stdout).Where(e => e["type"]!.GetValue<string>() == "step").Select(e => e["step"]!.GetValue<int>()));
        // Continue training the saved adapter as a new run (bf16 base).
        (code, stdout, stderr) = Run("--model", fx.ModelDir, "--data", fx.Data, "--init-adapter", outDir, "--bf16", "--block-size", "32",
            "--max-steps", "1", "--out", fx.Scratch("continued"), "--json-events");
        Assert.True(code == 0, stderr);
        Assert.True(File.Exists(Path.Combine(fx.Scratch("continued"), "adapter_model.safetensors")));
    }

    [Fact]
    public void ProgressBarModeRuns()
    {
        var (code, stdout, stderr) = Run(Basic(fx.Scratch("bar-run"), "--max-steps", "2", "--validation-split", "0.25"));
        Assert.True(code == 0, stderr);
        Assert.Contains("eval", stdout);
    }
}
