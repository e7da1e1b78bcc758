using System.CommandLine;
using Peft.Cli.Support;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft forward &lt;model_dir&gt; [--adapter [NAME=]DIR]... [--adapter-names a,__base__,...] [--merge]
/// --input IN.safetensors --out OUT.safetensors</c>: one forward pass; writes <c>logits</c> (float32).
/// </summary>
internal static class ForwardCommand
{
    private sealed record Request(string ModelDir, IReadOnlyList<AdapterSpec> Adapters, string[]? RowNames, bool Merge,
        string Input, string Output);

    public static Command Create(CliContext ctx)
    {
        var modelDir = new Argument<string>("model_dir") { Description = "Hugging Face model folder (config.json + model.safetensors)" };
        var adapters = new Option<string[]>("--adapter")
        {
            Description = "Adapter folder, named after the folder unless NAME= is given; repeatable, the first is active",
            HelpName = "[NAME=]DIR",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var names = new Option<string?>("--adapter-names")
        {
            Description = "One adapter per batch row, comma separated (mixed batch; __base__ = no adapter)",
            HelpName = "a,__base__,b",
        };
        var merge = new Option<bool>("--merge") { Description = "Merge the active adapter into the base weights first (merge_and_unload)" };
        var input = new Option<string>("--input")
        {
            Description = "safetensors with input_ids [batch, seq], optional attention_mask, decoder_input_ids for encoder-decoders",
            HelpName = "IN.safetensors",
            Required = true,
        };
        var output = new Option<string>("--out") { Description = "safetensors file to write 'logits' to", HelpName = "OUT.safetensors", Required = true };
        var cmd = new Command("forward", "Run one forward pass and save the logits") { modelDir, adapters, names, merge, input, output };
        cmd.SetAction(p => Execute(ctx, new Request(
            p.GetValue(modelDir)!,
            AdapterSpec.ParseAll(p.GetValue(adapters)),
            p.GetValue(names)?.Split(',', StringSplitOptions.TrimEntries),
            p.GetValue(merge),
            p.GetValue(input)!,
            p.GetValue(output)!)));
        return cmd;
    }

    private static int Execute(CliContext ctx, Request req)
    {
        CheckOptions(req);
        var task = ModelLoading.CheckAdapterConfigs(req.Adapters);
        using var scope = torch.NewDisposeScope();
        // Inputs are read before the (slow) weight load so a bad file fails fast.
        var inputs = ModelInputs.Read(req.Input);
        if (req.RowNames is { } rows && rows.Length != inputs.Rows)
            throw new UsageException($"--adapter-names has {rows.Length} names but {req.Input}: 'input_ids' has {inputs.Rows} rows");

        var model = ModelLoading.LoadModel(ctx, req.ModelDir, task);
        PeftModel? peft = null;
        bool ownModel = true;
        try
        {
            var args = inputs.ToForwardArgs(model, req.Input);
            if (req.Adapters.Count > 0)
            {
                ownModel = false; // AttachAdapters disposes the model on failure; the PeftModel owns it after.
                peft = ModelLoading.AttachAdapters(ctx, model, req.Adapters);
                if (req.Merge)
                {
                    model = peft.MergeAndUnload(); // the PeftModel no longer owns the base model
                    ownModel = true;
                }
            }
            using var noGrad = torch.no_grad();
            using var result = peft is not null && !req.Merge ? peft.Forward(args, req.RowNames) : model.Forward(args);
            using var logits = result.Logits.to(ScalarType.Float32).contiguous();
            Safetensors.Save(req.Output, [new("logits", logits)]);
            ctx.Out.WriteLine($"logits [{string.Join(", ", logits.shape)}] -> {req.Output}");
        }
        finally
        {
            peft?.Dispose();
            if (ownModel) model.Dispose();
        }
        return CliApp.Success;
    }

    private static void CheckOptions(Request req)
    {
        if (req.Merge && req.Adapters.Count == 0) throw new UsageException("--merge needs an --adapter");
        if (req.Merge && req.RowNames is not null)
            throw new UsageException("--merge cannot be combined with --adapter-names (merged weights serve a single adapter)");
        AdapterSpec.CheckRowNames(req.RowNames, req.Adapters);
    }
}
