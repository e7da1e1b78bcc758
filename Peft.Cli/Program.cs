return Peft.Cli.CliApp.Run(args, Console.Out, Console.Error);
