using System.CommandLine;
using Peft.Cli.Commands;

var root = new RootCommand("peft: parameter-efficient fine-tuning (Hugging Face PEFT on TorchSharp)");
root.Subcommands.Add(TrainCommand.Create());
return await root.Parse(args).InvokeAsync();
