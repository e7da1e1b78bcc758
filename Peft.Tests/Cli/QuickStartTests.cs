using Peft.Tests.Generation;
using Peft.Tests.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tuners;
using Peft.Training.Tuners.Lora;
using TorchSharp;

namespace Peft.Tests.Cli;

/// <summary>What README.md's quick start promises a new user.</summary>
public class QuickStartTests
{
    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Peft.sln"))) return d.FullName;
        throw new DirectoryNotFoundException("repository root (Peft.sln) not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void FirstCommandGeneratesWhatTransformersGenerates()
    {
        string root = RepoRoot();
        string readme = File.ReadAllText(Path.Combine(root, "README.md"));
        // The first block starts the hub and runs the tests; the CLI example is the block after it.
        string[] quickStart = readme.Split("```bash")[1].Split("```")[0].Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["dotnet run --project Peft.Web", "dotnet test Peft.sln -c Release"], quickStart.Select(l => l.Trim()).ToArray());
        string command = readme.Split("```bash")[2].Split('\n', StringSplitOptions.RemoveEmptyEntries)[0].Trim();
        Assert.StartsWith("dotnet run --project Peft.Cli -- generate samples/tiny-llama --adapter samples/tiny-llama-lora --input samples/prompts.safetensors --max-new-tokens 8", command);
        using var tmp = new TempDir();
        using var scope = torch.NewDisposeScope();
        var r = CliHarness.Run("generate", Path.Combine(root, "samples/tiny-llama"), "--adapter", Path.Combine(root, "samples/tiny-llama-lora"),
            "--input", Path.Combine(root, "samples/prompts.safetensors"), "--max-new-tokens", "8", "--out", tmp["seq.safetensors"]);
        r.AssertOk();
        var expected = GenerationFixtures.Expected("llama")["lora.b2.sequences"];
        Assert.Equal(GenerationFixtures.ToArray2D(expected), GenerationFixtures.ToArray2D(Safetensors.Load(tmp["seq.safetensors"])["sequences"]));
    }

    [Fact]
    public void LibraryQuickStartPrintsPeftsSummary()
    {
        // README: get_peft_model(model, LoraConfig(task_type=CAUSAL_LM, r=8, lora_alpha=32, lora_dropout=0.1)).
        var model = AutoModel.FromPretrained(Path.Combine(RepoRoot(), "samples/tiny-llama"));
        using var peft = PeftModel.Create(model, new LoraConfig { TaskType = TaskType.CausalLM, R = 8, LoraAlpha = 32, LoraDropout = 0.1 });
        // q_proj 64→64 and v_proj 64→32 in 2 layers at r=8: 2·(8·64 + 64·8 + 8·64 + 32·8) = 3,584.
        Assert.Equal("trainable params: 3,584 || all params: 112,448 || trainable%: 3.1873", peft.TrainableParametersSummary());
    }
}
