using Peft.Cli;
using Peft.Tests.Support;
using Peft.Training.IO;
using static TorchSharp.torch;

namespace Peft.Tests.Cli;

/// <summary>Runs the CLI in-process with captured output, plus temp-folder and golden-file helpers.</summary>
internal static class CliHarness
{
    public sealed record Result(int Code, string Out, string Err)
    {
        /// <summary>Asserts exit code 2 with exactly one "error: ..." line on stderr mentioning every fragment.</summary>
        public void AssertBadInput(params string[] fragments)
        {
            Assert.True(Code == CliApp.BadInput, $"exit code {Code}, stderr: {Err}");
            var lines = Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Single(lines);
            Assert.StartsWith("error: ", lines[0]);
            foreach (var f in fragments) Assert.Contains(f, lines[0]);
        }

        public void AssertOk() => Assert.True(Code == CliApp.Success, $"exit code {Code}, stderr: {Err}");
    }

    public static Result Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return new Result(code, stdout.ToString(), stderr.ToString());
    }

    public static string Golden(string caseName, string? file = null) =>
        file is null ? GoldenData.Dir(caseName) : Path.Combine(GoldenData.Dir(caseName), file);

    public static string ExpectedFile(string caseName) => Golden(caseName, "expected.safetensors");

    /// <summary>Loads the "logits" tensor a forward wrote (caller's dispose scope).</summary>
    public static Tensor Logits(string path)
    {
        using var f = SafetensorsFile.Open(path);
        Assert.Single(f.Entries);
        return f.Load("logits");
    }

    public static Tensor ExpectedTensor(string caseName, string key)
    {
        using var f = SafetensorsFile.Open(ExpectedFile(caseName));
        return f.Load(key);
    }

    /// <summary>Copies a folder (used to make edited or corrupted variants of golden inputs).</summary>
    public static string CopyDir(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        return target;
    }
}

