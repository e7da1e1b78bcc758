using System.CommandLine;
using System.Globalization;
using Peft.Cli.Support;
using Peft.Training.Tuners.Lora;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft combine &lt;model_dir&gt; --adapter DIR --adapter DIR... --weights 0.8,0.5 --combination-type TYPE
/// [--svd-rank N] [--density D] --out DIR [--force]</c>: PEFT's add_weighted_adapter, saved as a new adapter folder.
/// </summary>
internal static class CombineCommand
{
    public static Command Create(CliContext ctx)
    {
        var modelDir = new Argument<string>("model_dir") { Description = "Base model folder the adapters were trained on" };
        var adapters = new Option<string[]>("--adapter")
        {
            Description = "Source LoRA adapter folder ([NAME=]DIR); repeat for each adapter",
            HelpName = "DIR",
            Arity = ArgumentArity.OneOrMore,
            Required = true,
        };
        var weights = new Option<string>("--weights") { Description = "One weight per adapter, comma separated", HelpName = "W1,W2", Required = true };
        var type = new Option<string>("--combination-type") { Description = "How to combine", HelpName = "TYPE", Required = true };
        type.AcceptOnlyFromAmong(Enum.GetValues<CombinationType>().Select(AdapterCombination.ToName).ToArray());
        var svdRank = new Option<int?>("--svd-rank") { Description = "Rank of the result for the svd types (default: largest source rank)", HelpName = "N" };
        var density = new Option<double?>("--density") { Description = "Fraction of values kept (ties, dare_*, magnitude_prune)", HelpName = "D" };
        var output = new Option<string>("--out") { Description = "Folder for the combined adapter", HelpName = "DIR", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace --out if it exists and is not empty" };
        var cmd = new Command("combine", "Combine LoRA adapters into a new one (add_weighted_adapter)")
        {
            modelDir, adapters, weights, type, svdRank, density, output, force,
        };
        cmd.SetAction(p => Execute(ctx, p.GetValue(modelDir)!, AdapterSpec.ParseAll(p.GetValue(adapters)), p.GetValue(weights)!,
            p.GetValue(type)!, p.GetValue(svdRank), p.GetValue(density), p.GetValue(output)!, p.GetValue(force)));
        return cmd;
    }

    private static int Execute(CliContext ctx, string modelDir, IReadOnlyList<AdapterSpec> adapters, string weightsText,
        string typeName, int? svdRank, double? density, string outDir, bool force)
    {
        // Everything checkable without weights is checked first: loading the base model is the slow part.
        var weights = ParseWeights(weightsText);
        if (weights.Count != adapters.Count)
            throw new UsageException($"--weights has {weights.Count} values but {adapters.Count} adapters were given");
        var type = AdapterCombination.ForAdapterCount(AdapterCombination.Parse(typeName), adapters.Count);
        if (AdapterCombination.NeedsDensity(type) && density is null)
            throw new UsageException($"--density is required for --combination-type {typeName}");
        if (density is { } d && !(d > 0 && d <= 1)) throw new UsageException($"--density must be in (0, 1], got {d}");
        if (svdRank is <= 0) throw new UsageException($"--svd-rank must be positive, got {svdRank}");
        ModelLoading.LoadConfig(modelDir);
        var task = ModelLoading.CheckAdapterConfigs(adapters);

        using var output = OutputFolder.Begin(outDir, force, adapters.Select(a => a.Dir).Append(modelDir));
        var model = ModelLoading.LoadModel(ctx, modelDir, task);
        using var peft = ModelLoading.AttachAdapters(ctx, model, adapters);
        string newName = "combined";
        for (int i = 2; peft.Configs.ContainsKey(newName); i++) newName = $"combined_{i}";
        peft.AddWeightedAdapter(adapters.Select(a => a.Name).ToList(), weights, newName, typeName, svdRank, density);
        peft.SavePretrained(output.TempPath, [newName]); // non-default adapters go to <dir>/<name>/
        output.Commit(Path.Combine(output.TempPath, newName));
        var cfg = (LoraConfig)peft.Configs[newName];
        ctx.Out.WriteLine($"combined {adapters.Count} adapter(s) with {AdapterCombination.ToName(type)} (r={cfg.R}) -> {outDir}");
        return CliApp.Success;
    }

    private static List<double> ParseWeights(string text) => text.Split(',', StringSplitOptions.TrimEntries).Select(s =>
        double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var w) && double.IsFinite(w)
            ? w
            : throw new UsageException($"--weights: '{s}' is not a number")).ToList();
}
