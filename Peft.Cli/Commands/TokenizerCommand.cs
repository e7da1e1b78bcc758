using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Peft.Cli.Support;
using Peft.Training.Data.Corpora;
using Peft.Training.Tokenization;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft tokenizer train --data FILE.jsonl [--data ...] --vocab-size N --out DIR</c>: trains a byte-level BPE on the
/// "text" of the chosen split and saves a Hugging Face tokenizer folder; then reloads it through the HF tokenizers
/// library and reports tokens per word on the validation records of the same files.
/// </summary>
internal static class TokenizerCommand
{
    public static Command Create(CliContext ctx)
    {
        var data = new Option<string[]>("--data")
        {
            Description = "JSONL file with a \"text\" field (repeatable)", HelpName = "FILE", Required = true,
            AllowMultipleArgumentsPerToken = false,
        };
        var vocabSize = new Option<int>("--vocab-size")
        {
            Description = "Vocabulary size, special tokens and the 256 byte symbols included", DefaultValueFactory = _ => 8192,
        };
        var output = new Option<string>("--out") { Description = "Folder for the tokenizer files", HelpName = "DIR", Required = true };
        var split = new Option<string>("--split")
        {
            Description = "Train on records of this split ('all': every record); records without a split field are always used",
            DefaultValueFactory = _ => DataSplits.Train,
        };
        var minFrequency = new Option<int>("--min-frequency") { Description = "Stop when no pair occurs this often", DefaultValueFactory = _ => 2 };
        var maxLength = new Option<int?>("--model-max-length") { Description = "model_max_length for tokenizer_config.json", HelpName = "N" };
        var force = new Option<bool>("--force") { Description = "Replace tokenizer files already in --out (other files are kept)" };
        var train = new Command("train", "Train a byte-level BPE tokenizer (GPT-2 style) and save tokenizer.json")
            { data, vocabSize, output, split, minFrequency, maxLength, force };
        train.SetAction(p => Train(ctx, p.GetValue(data)!, p.GetValue(vocabSize), p.GetValue(output)!, p.GetValue(split)!,
            p.GetValue(minFrequency), p.GetValue(maxLength), p.GetValue(force)));
        return new Command("tokenizer", "Train tokenizers") { train };
    }

    private static int Train(CliContext ctx, string[] files, int vocabSize, string outDir, string split, int minFrequency,
        int? maxLength, bool force)
    {
        if (vocabSize < 258) throw new UsageException($"--vocab-size {vocabSize}: must be at least 258 (2 special tokens + 256 bytes)");
        if (minFrequency < 1) throw new UsageException($"--min-frequency {minFrequency}: must be at least 1");
        if (maxLength is <= 0) throw new UsageException($"--model-max-length {maxLength}: must be positive");
        foreach (var f in files)
            if (!File.Exists(f)) throw new PeftUserException($"--data {f}: file does not exist", UserErrorKind.NotFound);
        if (File.Exists(outDir)) throw new UsageException($"--out {outDir}: is a file, expected a folder");
        // Only the tokenizer files are replaced: the folder may already hold (or later receive) model weights.
        string[] written = [BpeTokenizerWriter.TokenizerJson, BpeTokenizerWriter.TokenizerConfig, BpeTokenizerWriter.SpecialTokensMap];
        if (!force && written.FirstOrDefault(f => File.Exists(Path.Combine(outDir, f))) is { } existing)
            throw new UsageException($"--out {outDir}: already has {existing} (use --force to replace the tokenizer files)");

        var clock = Stopwatch.StartNew();
        var trainer = new BpeTrainer(new BpeTrainerOptions { VocabSize = vocabSize, MinFrequency = minFrequency });
        long texts = 0, chars = 0;
        try
        {
            foreach (var f in files)
                foreach (var t in Jsonl.ReadTexts(f, split == "all" ? null : split))
                {
                    trainer.Feed(t);
                    texts++;
                    chars += t.Length;
                }
        }
        catch (PeftUserException e)
        {
            throw new UsageException($"--data: {e.Message}");   // a malformed data file is the user's input
        }
        if (texts == 0) throw new UsageException($"no records of split '{split}' in {string.Join(", ", files)}");
        double readSeconds = clock.Elapsed.TotalSeconds;
        ctx.Out.WriteLine(Inv($"read {texts:N0} texts ({chars / 1e6:F2} M chars, {trainer.WordTypes:N0} word types) in {readSeconds:F1} s"));

        var model = trainer.Train();
        double trainSeconds = clock.Elapsed.TotalSeconds - readSeconds;
        ctx.Out.WriteLine(Inv($"trained {model.Vocab.Count:N0} tokens ({model.SpecialTokens.Count} special, 256 bytes, {model.Merges.Count:N0} merges) in {trainSeconds:F1} s"));
        if (model.Vocab.Count < vocabSize)
            ctx.Err.WriteLine(Inv($"note: stopped at {model.Vocab.Count:N0} tokens: no pair occurs {minFrequency}+ times"));

        BpeTokenizerWriter.Save(model, outDir, maxLength);
        long size = new FileInfo(Path.Combine(outDir, BpeTokenizerWriter.TokenizerJson)).Length;
        ctx.Out.WriteLine(Inv($"wrote {outDir} (tokenizer.json {size / 1024.0:F0} KiB, tokenizer_config.json, special_tokens_map.json)"));
        Report(ctx, outDir, files);
        return CliApp.Success;
    }

    // Loading through the native library also proves the files are valid for transformers.
    private static void Report(CliContext ctx, string dir, string[] files)
    {
        using var tok = AutoTokenizer.FromFolder(dir);
        long texts = 0, words = 0, tokens = 0;
        foreach (var f in files)
            foreach (var t in Jsonl.ReadTexts(f, DataSplits.Validation, includeUnsplit: false))
            {
                texts++;
                words += t.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;
                tokens += tok.Encode(t, addSpecialTokens: false).Count;
            }
        if (words > 0)
            ctx.Out.WriteLine(Inv($"validation: {texts:N0} texts, {words:N0} words, {tokens:N0} tokens, {(double)tokens / words:F3} tokens/word"));
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
