using Peft.Training.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Tests.Support;

/// <summary>Access to the reference data produced by transformers 4.40 + PEFT 0.10 (see Golden/MANIFEST.md).</summary>
public static class GoldenData
{
    public static string Root => Path.Combine(AppContext.BaseDirectory, "Golden");

    public static string Dir(string caseName) => Path.Combine(Root, caseName);

    /// <summary>All tensors of a case's expected.safetensors (caller disposes).</summary>
    public static Dictionary<string, Tensor> Expected(string caseName) =>
        Safetensors.Load(Path.Combine(Dir(caseName), "expected.safetensors"));

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        Assert.Equal(b.shape, a.shape);
        using var d = (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max();
        return d.item<double>();
    }

    /// <summary>Asserts max |a − b| ≤ tol with a message that shows the actual difference.</summary>
    public static void AssertClose(Tensor expected, Tensor actual, double tol, string what)
    {
        double diff = MaxAbsDiff(actual, expected);
        Assert.True(diff <= tol, $"{what}: max |diff| = {diff:E3} > {tol:E1}");
    }

    /// <summary>
    /// A copy of a golden model folder with every dropout rate in config.json set to 0: the training references ran
    /// in eval mode (no dropout), while a trainer runs the model in training mode, where the configured rates apply.
    /// </summary>
    public static string ZeroDropoutCopy(string caseName, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(Dir(caseName))) File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        string path = Path.Combine(target, "config.json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var rates = json.Where(kv => kv.Key.Contains("drop", StringComparison.Ordinal) && kv.Value is System.Text.Json.Nodes.JsonValue v
            && v.TryGetValue<double>(out _)).Select(kv => kv.Key).ToList();
        foreach (var key in rates) json[key] = 0.0;
        File.WriteAllText(path, json.ToJsonString());
        return target;
    }

    /// <summary>(trainable, all) from the case's info.json.</summary>
    public static (long Trainable, long All) Counts(string caseName)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(Dir(caseName), "info.json")))!;
        return (json["trainable_params"]!.GetValue<long>(), json["all_params"]!.GetValue<long>());
    }
}
