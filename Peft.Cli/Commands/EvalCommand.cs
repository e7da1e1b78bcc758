using System.CommandLine;
using System.Text.Json.Nodes;
using Peft.Cli.Support;
using Peft.Training.Data;
using Peft.Training.Models;
using Peft.Training.Tokenization;
using Peft.Training.Training;

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
        cmd.SetAction(p =>
        {
            string dir = p.GetValue(modelDir)!;
            string file = p.GetValue(data)!;
            if (!File.Exists(file)) throw new PeftUserException($"{file}: data file not found", UserErrorKind.NotFound);
            if (p.GetValue(blockSize) <= 0 || p.GetValue(batchSize) <= 0) throw new UsageException("--block-size and --batch-size must be positive");
            var adapters = p.GetValue(adapter) is { } a ? new[] { AdapterSpec.Parse(a) } : [];
            var config = ModelLoading.LoadConfig(dir);
            var task = AutoModel.ResolveTask(config, ModelLoading.CheckAdapterConfigs(adapters));
            bool classifies = task is TaskType.SequenceClassification or TaskType.TokenClassification;
            var fmt = Format(p.GetValue(format), task);
            using var tokenizer = AutoTokenizer.FromFolder(dir);
            var dataset = DatasetBuilder.Load(file, tokenizer, new DatasetOptions
            {
                Format = fmt, Task = task, BlockSize = p.GetValue(blockSize), MaxLength = p.GetValue(blockSize),
                LabelNames = classifies ? TaskHeads.LabelNames(config) : null,
            });
            var model = ModelLoading.LoadModel(ctx, dir, task);
            var peft = adapters.Length > 0 ? ModelLoading.AttachAdapters(ctx, model, adapters) : null;
            try
            {
                var collator = new DataCollator(model.Task, tokenizer.PadTokenId ?? tokenizer.EosTokenId ?? 0);
                var result = Evaluation.Run(TrainableModel.ForEvaluation(model, peft), collator, dataset, p.GetValue(batchSize));
                var json = new JsonObject();
                foreach (var (k, v) in result.Metrics) json[k] = v;
                json[classifies ? "labels" : "tokens"] = result.Counted;
                json["examples"] = dataset.Count;
                ctx.Out.WriteLine(json.ToJsonString());
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

    private static DataFormat Format(string? given, TaskType task)
    {
        if (given is null)
            return task switch
            {
                TaskType.SequenceClassification => DataFormat.Classification,
                TaskType.TokenClassification => DataFormat.TokenClassification,
                _ => DataFormat.Text,
            };
        return Enum.TryParse(given.Replace("-", ""), ignoreCase: true, out DataFormat fmt) && Enum.IsDefined(fmt)
            ? fmt
            : throw new UsageException($"--format: unknown format '{given}'");
    }
}
