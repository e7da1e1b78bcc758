using System.Text.Json.Nodes;
using Peft.Tests.Support;
using Peft.Tests.Training;
using Peft.Training.FineTuning;
using Peft.Training.Models;
using Peft.Training.Training;
using Peft.Training.Tuners;
using TorchSharp;

namespace Peft.Tests.FineTuning;

/// <summary>The fine-tuning service: request JSON, validation naming keys, plans, estimates and runs.</summary>
public class FineTuneServiceTests(CliModelFixture fx) : IClassFixture<CliModelFixture>
{
    private JsonObject Job(string outDir) => new()
    {
        ["model"] = fx.ModelDir, ["data"] = fx.Data, ["method"] = "lora", ["r"] = 4, ["lora_alpha"] = 8, ["target_modules"] = "q_proj,v_proj",
        ["block_size"] = 32, ["batch_size"] = 4, ["learning_rate"] = 1e-3, ["max_steps"] = 2, ["out"] = outDir,
    };

    [Fact]
    public void RequestJsonRoundTripsAndDefaultsAreThoseDocumented()
    {
        var request = FineTuneRequest.FromJson(Job("o"));
        Assert.Equal(4, request.R);
        Assert.Equal(1e-3, request.LearningRate);
        Assert.Equal(["q_proj", "v_proj"], request.TargetModules!);
        Assert.Equal(0.05, request.LoraDropout);   // the default
        var again = FineTuneRequest.FromJson(request.ToJson());
        Assert.Equal(request.ToJson().ToJsonString(), again.ToJson().ToJsonString());
        // The alias the CLI always had: lr.
        Assert.Equal(5e-4, FineTuneRequest.FromJson(new JsonObject { ["lr"] = 5e-4 }).LearningRate);

        // docs/FINE-TUNING.md documents every key with its default.
        string doc = File.ReadAllText(Demo.DemoModelTests.RepoPath("docs/FINE-TUNING.md"));
        foreach (var key in FineTuneRequest.Keys)
            Assert.Contains($"| `{key.Name}` | {key.Default ?? "—"} |", doc);
    }

    [Theory]
    [InlineData("r", "\"eight\"", "r: expected an integer, got 'eight'")]
    [InlineData("lora_alpha", "[1]", "lora_alpha: expected a number, got [1]")]
    [InlineData("r", "0", "r: must be a positive integer, got 0")]
    [InlineData("lora_dropout", "1.5", "lora_dropout: must be in [0, 1), got 1.5")]
    [InlineData("method", "\"magic\"", "method: unknown method 'magic'")]
    [InlineData("batch_size", "0", "batch_size: must be positive")]
    [InlineData("warmup", "2.5", "warmup: must be a whole number of steps or a fraction below 1, got 2.5")]
    [InlineData("target_r", "20", "target_r: must be in 1..init_r (12), got 20")]
    [InlineData("frobnicate", "1", "frobnicate: unknown key")]
    public void ErrorsNameTheKey(string key, string value, string message)
    {
        var json = Job(fx.Scratch("never"));
        json[key] = JsonNode.Parse(value);
        if (key == "target_r") json["method"] = "adalora";
        var e = Assert.ThrowsAny<PeftUserException>(() => FineTunePlan.Create(FineTuneRequest.FromJson(json)));
        Assert.StartsWith(message, e.Message);
        Assert.Equal(key, Assert.IsType<FineTuneRequestException>(e).Key);
    }

    [Fact]
    public void MissingFilesAreNotFoundAndModelRootsResolveNames()
    {
        var json = Job(fx.Scratch("x"));
        json["data"] = "/no/such.jsonl";
        var e = Assert.ThrowsAny<PeftUserException>(() => FineTunePlan.Create(FineTuneRequest.FromJson(json)));
        Assert.Equal(UserErrorKind.NotFound, e.Kind);
        Assert.Equal("data: file not found: /no/such.jsonl", e.Message);

        json = Job(fx.Scratch("x"));
        json["model"] = Path.GetFileName(fx.ModelDir);
        Assert.Equal(UserErrorKind.NotFound, Assert.ThrowsAny<PeftUserException>(() => FineTunePlan.Create(FineTuneRequest.FromJson(json))).Kind);
        var plan = FineTunePlan.Create(FineTuneRequest.FromJson(json), new FineTuneEnvironment { ModelRoots = [Path.GetDirectoryName(fx.ModelDir)!] });
        Assert.Equal(fx.ModelDir, plan.ModelDir);
        Assert.Equal(TaskType.CausalLM, plan.Task);
    }

    [Theory]
    [InlineData("lora")]
    [InlineData("dora")]
    [InlineData("adalora")]
    [InlineData("ia3")]
    [InlineData("prefix")]
    [InlineData("full")]
    public void EstimateCountsWhatTheRunTrains(string method)
    {
        var json = Job(fx.Scratch("est-" + method));
        json["method"] = method;
        json.Remove("target_modules");
        var plan = FineTunePlan.Create(FineTuneRequest.FromJson(json));
        var estimate = plan.Estimate();
        // The same numbers from a real (weights-loaded) build, as print_trainable_parameters reports them.
        var model = AutoModel.FromPretrained(fx.ModelDir);
        var config = FineTuneMethods.CreateConfig(plan.Request, model.Task, plannedSteps: 2);
        if (config is null)
        {
            using (model)
            {
                long all = model.UniqueNamedParameters().Sum(p => p.Param.numel());
                Assert.Equal(all, estimate.TrainableParameters);
                Assert.Equal(all * 4, estimate.AdapterBytes);
            }
            return;
        }
        using var peft = PeftModel.Create(model, config, seed: 0);
        var (trainable, allParams) = peft.GetNbTrainableParameters();
        Assert.Equal(trainable, estimate.TrainableParameters);
        Assert.Equal(allParams, estimate.AllParameters);
        using var dir = new TempDir();
        peft.SavePretrained(dir.Path);
        long fileBytes = new FileInfo(Path.Combine(dir.Path, PeftModel.WeightsFileName)).Length;
        // The estimate is the tensor data; the file adds its JSON header (a few KiB at most).
        Assert.InRange(fileBytes - estimate.AdapterBytes, 8, 16_384);
    }

    [Fact]
    public void InspectionListsRealModuleNamesAndTheFamilyDefaults()
    {
        var m = FolderInspector.Model(fx.ModelDir);
        Assert.Equal("llama", m.ModelType);
        Assert.Equal(["down_proj", "gate_proj", "k_proj", "lm_head", "o_proj", "q_proj", "up_proj", "v_proj"], m.TargetableModules.Order(StringComparer.Ordinal));
        Assert.Equal(["q_proj", "v_proj"], m.DefaultTargets!);
        Assert.False(FolderInspector.IsAdapter(fx.ModelDir));
    }

    [Fact]
    public void RunTrainsAndSavesTheAdapterWithProgress()
    {
        string outDir = fx.Scratch("svc-run");
        var events = new List<TrainingEvent>();
        var plan = FineTunePlan.Create(FineTuneRequest.FromJson(Job(outDir)));
        var result = plan.Run(new SyncProgress<TrainingEvent>(events.Add));
        Assert.False(result.Cancelled);
        Assert.Equal(2, result.Training.GlobalStep);
        Assert.Equal(result.Training.StepLosses, events.Where(e => e.Kind == TrainingEventKind.Step).Select(e => e.Loss!.Value));
        var saved = (LoraConfig)PeftConfigs.Load(outDir);
        Assert.Equal(4, saved.R);
        Assert.Equal(["q_proj", "v_proj"], saved.TargetModules!.Items!.Order());
    }
}
