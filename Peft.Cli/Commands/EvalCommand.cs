using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Peft.Cli.Support;
using Peft.Training.Data;
using Peft.Training.Models;
using Peft.Training.Tokenization;
using Peft.Training.Training;
using TorchSharp;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft eval &lt;model_dir&gt; [--adapter DIR] --data FILE [--format F] [--block-size N] [--batch-size N]</c>: the
/// causal-LM loss and perplexity of a model (with an optional adapter) on a data file, the same loss the trainer's
/// evaluation reports. Prints one JSON line.
/// </summary>
internal static class EvalCommand
{
    public static Command Create(CliContext ctx)
    {
        var modelDir = new Argument<string>("model_dir") { Description = "Model folder (with tokenizer.json)" };
        var adapter = new Option<string?>("--adapter") { Description = "Adapter folder to evaluate on top of the model", HelpName = "DIR" };
        var data = new Option<string>("--data") { Description = "Data file (.jsonl, .csv, text)", HelpName = "FILE", Required = true };
        var format = new Option<string>("--format") { Description = "Data format (default text)", DefaultValueFactory = _ => "text" };
        var blockSize = new Option<int>("--block-size") { Description = "Packed block length for text", DefaultValueFactory = _ => 256 };
        var batchSize = new Option<int>("--batch-size") { Description = "Examples per batch", DefaultValueFactory = _ => 8 };
        var cmd = new Command("eval", "Loss and perplexity of a model (and adapter) on a data file") { modelDir, adapter, data, format, blockSize, batchSize };
        cmd.SetAction(p =>
        {
            string dir = p.GetValue(modelDir)!;
            string file = p.GetValue(data)!;
            if (!File.Exists(file)) throw new FileNotFoundException($"{file}: data file not found", file);
            if (!Enum.TryParse(p.GetValue(format)!.Replace("-", ""), ignoreCase: true, out DataFormat fmt))
                throw new UsageException($"--format: unknown format '{p.GetValue(format)}'");
            if (p.GetValue(blockSize) <= 0 || p.GetValue(batchSize) <= 0) throw new UsageException("--block-size and --batch-size must be positive");
            using var tokenizer = AutoTokenizer.FromFolder(dir);
            var dataset = DatasetBuilder.Load(file, tokenizer, new DatasetOptions { Format = fmt, BlockSize = p.GetValue(blockSize), MaxLength = p.GetValue(blockSize) });
            var model = ModelLoading.LoadModel(ctx, dir, null);
            model.eval();
            var peft = p.GetValue(adapter) is { } a ? ModelLoading.AttachAdapters(ctx, model, [AdapterSpec.Parse(a)]) : null;
            try
            {
                var collator = new DataCollator(model.Task, tokenizer.PadTokenId ?? tokenizer.EosTokenId ?? 0);
                double sum = 0;
                long count = 0;
                using var noGrad = torch.no_grad();
                foreach (var rows in dataset.Examples.Chunk(p.GetValue(batchSize)))
                {
                    using var scope = torch.NewDisposeScope();
                    using var batch = collator.Collate(rows, model.Device);
                    using var output = peft is null ? model.Forward(batch.ToForwardArgs()) : peft.Forward(batch.ToForwardArgs());
                    var loss = Trainer.ComputeLoss(output.Logits, batch.Labels, model.Task);
                    sum += loss.Sum.ToDouble();
                    count += loss.Count;
                }
                double mean = sum / Math.Max(1, count);
                ctx.Out.WriteLine(new JsonObject
                {
                    ["eval_loss"] = mean, ["eval_perplexity"] = Math.Exp(mean), ["tokens"] = count, ["examples"] = dataset.Count,
                }.ToJsonString());
                return CliApp.Success;
            }
            finally
            {
                if (peft is not null) peft.Dispose();
                else model.Dispose();
            }
        });
        return cmd;
    }
}
