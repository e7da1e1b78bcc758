using System.CommandLine;
using System.Text.Json.Nodes;
using Peft.Cli.Support;
using Peft.Training.FineTuning;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft eval &lt;model_dir&gt; [--adapter DIR] --data FILE [--format F] [--block-size N] [--batch-size N]</c>: the
/// score the trainer's evaluation reports, for a model (with an optional adapter) on a data file: loss and
/// perplexity for language models, loss, accuracy and macro F1 for classifiers. The head is the adapter's
/// task_type, else what config.json names. Prints one JSON line.
/// </summary>
internal static class EvalCommand
{
    public static Command Create(CliContext ctx)
    {
        var modelDir = new Argument<string>("model_dir") { Description = "Model folder (with tokenizer.json)" };
        var adapter = new Option<string?>("--adapter") { Description = "Adapter folder to evaluate on top of the model", HelpName = "DIR" };
        var data = new Option<string>("--data") { Description = "Data file (.jsonl, .csv, text)", HelpName = "FILE", Required = true };
        var format = new Option<string>("--format") { Description = "Data format (default: text for language models, classification for classifiers)" };
        var blockSize = new Option<int>("--block-size") { Description = "Packed block length for text; longest example otherwise", DefaultValueFactory = _ => 256 };
        var batchSize = new Option<int>("--batch-size") { Description = "Examples per batch", DefaultValueFactory = _ => 8 };
        var cmd = new Command("eval", "Loss and perplexity (or accuracy and F1) of a model and adapter on a data file")
        {
            modelDir, adapter, data, format, blockSize, batchSize,
        };
        var quantize = new QuantizeOptions();
        quantize.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var report = ModelEvaluation.Run(new EvaluationRequest(p.GetValue(modelDir)!, p.GetValue(data)!)
            {
                AdapterDir = p.GetValue(adapter), Format = p.GetValue(format), BlockSize = p.GetValue(blockSize), BatchSize = p.GetValue(batchSize),
                Quantization = quantize.Read(p),
            });
            var json = new JsonObject();
            foreach (var (k, v) in report.Metrics) json[k] = v;
            json[report.Classifies ? "labels" : "tokens"] = report.Counted;
            json["examples"] = report.Examples;
            ctx.Out.WriteLine(json.ToJsonString());
            return CliApp.Success;
        });
        return cmd;
    }
}
