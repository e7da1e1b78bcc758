using System.CommandLine;
using Peft.Cli.Support;
using Peft.Training.Generation;
using Peft.Training.IO;
using Peft.Training.Models;
using Peft.Training.Tokenization;
using Peft.Training.Tuners;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Cli.Commands;

/// <summary>
/// <c>peft generate &lt;model_dir&gt; [--adapter [NAME=]DIR]... (--prompt TEXT | --input IN.safetensors --out OUT.safetensors)
/// [decoding options]</c>: transformers' generate() for causal LMs and encoder-decoder (T5/mT5) LMs. A prompt is
/// tokenized with the model folder's tokenizer.json and the output streamed to stdout (a causal LM echoes the prompt and
/// continues it; a seq2seq LM prints the decoder's text). A token file gives <c>sequences</c> exactly as generate()
/// returns them: prompt + new tokens for a causal LM (left-padded batch), decoder_start_token_id + new tokens for a
/// seq2seq LM (encoder batch padded on either side).
/// </summary>
internal static class GenerateCommand
{
    private sealed record Request(string ModelDir, IReadOnlyList<AdapterSpec> Adapters, string[]? RowNames,
        string? Prompt, string? Input, string? Output, bool OutputScores, GenerationOptions Options,
        Peft.Training.Quantization.QuantizationConfig? Quantization = null);

    private const string DecodingHelp =
        "Decoding follows the model's generation_config.json like transformers: greedy unless it sets do_sample. " +
        "--temperature, --top-p and --top-k imply --do-sample; '--do-sample false' forces greedy decoding.";

    public static Command Create(CliContext ctx)
    {
        var modelDir = new Argument<string>("model_dir") { Description = "Causal LM or seq2seq LM (T5/mT5) folder (config.json + model.safetensors; tokenizer.json for --prompt)" };
        var adapters = new Option<string[]>("--adapter")
        {
            Description = "Adapter folder, named after the folder unless NAME= is given; repeatable, the first is active",
            HelpName = "[NAME=]DIR",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var names = new Option<string?>("--adapter-names") { Description = "One adapter per batch row, comma separated (mixed batch; __base__ = no adapter)", HelpName = "a,__base__,b" };
        var prompt = new Option<string?>("--prompt") { Description = "Text to continue (seq2seq: the encoder's input); streams the output", HelpName = "TEXT" };
        var input = new Option<string?>("--input") { Description = "safetensors with input_ids [batch, prompt] (causal LM: pad on the left; seq2seq: encoder ids, either side) and optional attention_mask", HelpName = "IN.safetensors" };
        var output = new Option<string?>("--out") { Description = "With --input: file to write 'sequences' (int64; causal LM: prompt included, seq2seq: decoder start token first) to", HelpName = "OUT.safetensors" };
        var scores = new Option<bool>("--output-scores") { Description = "With --input: also write 'scores' [rows, steps, vocab] float32 (beam search: rows = batch x beams)" };
        var maxNew = new Option<int?>("--max-new-tokens") { Description = "Tokens to generate (default: generation_config.json, else 20)", HelpName = "N" };
        var doSample = new Option<bool?>("--do-sample") { Description = "Sample instead of greedy decoding ('--do-sample false': greedy even if generation_config.json samples)", Arity = ArgumentArity.ZeroOrOne };
        var temperature = new Option<double?>("--temperature") { Description = "Sampling temperature, > 0 (implies --do-sample)", HelpName = "T" };
        var topP = new Option<double?>("--top-p") { Description = "Nucleus sampling probability mass, 0 <= P <= 1 (implies --do-sample)", HelpName = "P" };
        var topK = new Option<int?>("--top-k") { Description = "Sample among the K most likely tokens, 0 = all (implies --do-sample; default 50)", HelpName = "K" };
        var seed = new Option<long?>("--seed") { Description = "Seed of the sampling generator, for reproducible samples", HelpName = "S" };
        var beams = new Option<int?>("--num-beams") { Description = "Beam search width (default 1); the continuation is printed at the end", HelpName = "N" };
        var pad = new Option<int?>("--pad-token-id") { Description = "Written after a row finished; without attention_mask, marks padding (default: generation_config.json, else eos)", HelpName = "ID" };
        var cmd = new Command("generate", "Generate text with a causal LM or a seq2seq LM (greedy, sampling or beam search). " + DecodingHelp)
        {
            modelDir, adapters, names, prompt, input, output, scores, maxNew, doSample, temperature, topP, topK, seed, beams, pad,
        };
        var quantize = new QuantizeOptions();
        quantize.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var options = DecodingOptions(p.GetValue(maxNew), p.GetValue(doSample), p.GetValue(temperature), p.GetValue(topP),
                p.GetValue(topK), p.GetValue(seed), p.GetValue(beams), p.GetValue(pad));
            return Execute(ctx, new Request(
                p.GetValue(modelDir)!,
                AdapterSpec.ParseAll(p.GetValue(adapters)),
                p.GetValue(names)?.Split(',', StringSplitOptions.TrimEntries),
                p.GetValue(prompt),
                p.GetValue(input),
                p.GetValue(output),
                p.GetValue(scores),
                options,
                quantize.Read(p)));
        });
        return cmd;
    }

    /// <summary>Validates the decoding options (each error names its option) before anything is loaded.</summary>
    private static GenerationOptions DecodingOptions(int? maxNew, bool? doSample, double? temperature, double? topP,
        int? topK, long? seed, int? beams, int? pad)
    {
        // The library's ranges, checked before anything is loaded and named as the flags.
        if (maxNew is { } m) GenerationRules.MaxNewTokens(m, "--max-new-tokens");
        if (temperature is { } t) GenerationRules.Temperature(t, "--temperature");
        if (topP is { } p) GenerationRules.TopP(p, "--top-p");
        if (topK is { } k) GenerationRules.TopK(k, "--top-k");
        if (beams is { } nb) GenerationRules.NumBeams(nb, "--num-beams");
        if (pad is { } pd) GenerationRules.PadTokenId(pd, "--pad-token-id");
        string? samplingOption = temperature is not null ? "--temperature" : topP is not null ? "--top-p" : topK is not null ? "--top-k" : null;
        if (samplingOption is not null && doSample == false)
            throw new UsageException($"{samplingOption} only applies to sampling; it cannot be combined with --do-sample false");
        // Like transformers, sampling parameters without do_sample would be ignored; here they ask for sampling.
        bool? sample = doSample ?? (samplingOption is not null ? true : null);
        if (sample == true && beams > 1)
            throw new UsageException($"--num-beams {beams} cannot be combined with sampling ({samplingOption ?? "--do-sample"}): beam sampling is not supported");
        return new GenerationOptions
        {
            MaxNewTokens = maxNew, DoSample = sample, Temperature = temperature, TopP = topP, TopK = topK,
            Seed = seed, NumBeams = beams, PadTokenId = pad,
        };
    }

    private static int Execute(CliContext ctx, Request req)
    {
        CheckModes(req);
        AdapterSpec.CheckRowNames(req.RowNames, req.Adapters);
        ModelLoading.LoadConfig(req.ModelDir);
        var task = ModelLoading.CheckAdapterConfigs(req.Adapters);
        using var scope = torch.NewDisposeScope();
        // Tokenizer and inputs are read before the (slow) weight load so that bad files fail fast.
        using var tokenizer = req.Prompt is null ? null : LoadTokenizer(req.ModelDir);
        var inputs = req.Input is null ? null : ModelInputs.Read(req.Input);
        long rows = inputs?.Rows ?? 1;
        if (req.RowNames is { } rowNames && rowNames.Length != rows)
            throw new UsageException(inputs is null
                ? $"--adapter-names has {rowNames.Length} names but --prompt is a single row"
                : $"--adapter-names has {rowNames.Length} names but {req.Input}: 'input_ids' has {rows} rows");

        var model = ModelLoading.LoadModel(ctx, req.ModelDir, task, req.Quantization);
        var peft = req.Adapters.Count > 0 ? ModelLoading.AttachAdapters(ctx, model, req.Adapters) : null; // disposes model on failure
        using IDisposable owner = peft is null ? model : peft;
        bool generates = model.IsEncoderDecoder ? model.Task == TaskType.Seq2SeqLM : model.Task == TaskType.CausalLM;
        if (!generates) // checked before the prompt is echoed
            throw new UsageException($"{req.ModelDir}: generate needs a causal LM or a seq2seq LM; this is {model.ModelType} ({model.Task.ToPeftString()})");
        ICausalLmRunner runner = peft is null ? new ModelRunner(model) : new PeftModelRunner(peft);
        var defaults = GenerationConfig.ForModel(model);
        var options = req.Options with { AdapterNames = req.RowNames, Defaults = defaults, OutputScores = req.OutputScores };
        CheckAgainstDefaults(options, defaults, req.ModelDir);
        return tokenizer is not null
            ? RunPrompt(ctx, runner, tokenizer, req.Prompt!, options)
            : RunBatch(ctx, runner, inputs!, req, options);
    }

    private static void CheckModes(Request req)
    {
        if (req.Prompt is not null && req.Input is not null)
            throw new UsageException("give either --prompt TEXT or --input IN.safetensors, not both");
        if (req.Prompt is null && req.Input is null)
            throw new UsageException("give --prompt TEXT (text to continue) or --input IN.safetensors (token ids)");
        if (req.Input is not null && req.Output is null) throw new UsageException("--input needs --out OUT.safetensors");
        if (req.Input is null && req.Output is not null) throw new UsageException("--out is only used with --input (--prompt prints to stdout)");
        if (req.Input is null && req.OutputScores) throw new UsageException("--output-scores is only used with --input and --out");
    }

    /// <summary>generation_config.json may ask for sampling; a beam width from the command line cannot honour it.</summary>
    private static void CheckAgainstDefaults(GenerationOptions o, GenerationConfig defaults, string modelDir)
    {
        if (o.NumBeams > 1 && o.DoSample is null && defaults.DoSample == true)
            throw new UsageException($"--num-beams {o.NumBeams}: {Path.Combine(modelDir, GenerationConfig.FileName)} sets do_sample and " +
                "beam sampling is not supported; add --do-sample false for plain beam search");
    }

    private static ITextTokenizer LoadTokenizer(string modelDir)
    {
        try
        {
            return AutoTokenizer.FromFolder(modelDir);
        }
        catch (PeftUserException e) when (e.Kind == UserErrorKind.NotFound)
        {
            throw new UsageException($"--prompt needs a tokenizer: {e.Message} (or use --input with token ids)");
        }
    }

    private static int RunPrompt(CliContext ctx, ICausalLmRunner runner, ITextTokenizer tokenizer, string prompt, GenerationOptions options)
    {
        var ids = tokenizer.Encode(prompt);
        if (ids.Count == 0) throw new UsageException("--prompt: the text encodes to no tokens");
        int vocab = runner.Model.VocabSize;
        if (ids.FirstOrDefault(i => i >= vocab, -1) is var bad and >= 0)
            throw new UsageException($"--prompt: token id {bad} of the tokenizer is outside the model's vocabulary ({vocab} entries)");
        using var inputIds = torch.tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Count]);
        // An explicit all-ones mask: the prompt has no padding, even if it contains the pad id (transformers would mask it).
        using var mask = torch.ones_like(inputIds);
        // A causal LM continues the prompt (echoed first); a seq2seq LM writes a new text from its decoder start token.
        bool seq2seq = runner.Model.IsEncoderDecoder;
        var streamer = new TokenStreamer(tokenizer, seq2seq ? [] : ids, ctx.Out);
        if (!seq2seq) ctx.Out.Write(prompt);
        ctx.Out.Flush();
        bool beams = (options.NumBeams ?? options.Defaults?.NumBeams ?? 1) > 1;
        if (!beams)
        {
            // The step that emits eos finishes the row; eos is not part of the text.
            var streaming = options with { OnStep = s => { if (!s.Finished[0]) streamer.Put(s.Tokens[0]); } };
            using var result = TextGenerator.Generate(runner, inputIds, mask, streaming);
        }
        else
        {
            // Beam search only knows the winner at the end (transformers refuses streamers with beams).
            using var result = TextGenerator.Generate(runner, inputIds, mask, options);
            var eos = options.Defaults?.EosTokenIds ?? [];
            var tokens = result.NewTokens(0);
            for (int i = 0; i < tokens.Length; i++)
                if (i < tokens.Length - 1 || !eos.Contains((int)tokens[i])) streamer.Put(tokens[i]);
        }
        streamer.End();
        ctx.Out.WriteLine();
        return CliApp.Success;
    }

    private static int RunBatch(CliContext ctx, ICausalLmRunner runner, ModelInputs inputs, Request req, GenerationOptions options)
    {
        inputs.CheckInputIds(runner.Model, req.Input!);
        using var result = Generate(ctx, runner, inputs, options);
        using var sequences = result.Sequences.to(ScalarType.Int64).contiguous();
        using var stacked = req.OutputScores ? result.StackedScores().to(ScalarType.Float32).contiguous() : null;
        var tensors = new List<KeyValuePair<string, Tensor>> { new("sequences", sequences) };
        if (stacked is not null) tensors.Add(new("scores", stacked));
        Safetensors.Save(req.Output!, tensors);
        ctx.Out.WriteLine($"sequences [{Shape(sequences)}]" + (stacked is null ? "" : $", scores [{Shape(stacked)}]") + $" -> {req.Output}");
        return CliApp.Success;
    }

    /// <summary>No tokens are printed for a token file, so a terminal gets a progress bar over the steps.</summary>
    private static GenerationResult Generate(CliContext ctx, ICausalLmRunner runner, ModelInputs inputs, GenerationOptions options)
    {
        GenerationResult Run(GenerationOptions o) => TextGenerator.Generate(runner, inputs.InputIds, inputs.AttentionMask, o);
        if (!ctx.Interactive) return Run(options);
        if ((options.NumBeams ?? options.Defaults?.NumBeams ?? 1) > 1) return ctx.Step("Beam search", () => Run(options));
        int steps = options.MaxNewTokens ?? options.Defaults?.MaxNewTokens ?? 20;
        return AnsiConsole.Progress().AutoClear(true).Start(p =>
        {
            var bar = p.AddTask("Generating", maxValue: steps);
            var result = Run(options with { OnStep = _ => bar.Increment(1) });
            bar.Value = bar.MaxValue; // every row may finish (eos) before the step budget
            return result;
        });
    }

    private static string Shape(Tensor t) => string.Join(", ", t.shape);

}
