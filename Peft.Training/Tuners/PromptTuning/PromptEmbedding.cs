using Peft.Training.Models;
using Peft.Training.Tokenization;
using Peft.Training.Tuners.PromptLearning;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Training.Tuners.PromptTuning;

/// <summary>PEFT's <c>PromptEmbedding</c>: the trainable table is the prompt (no head).</summary>
public sealed class PromptEmbedding : VirtualTokenEncoder
{
    public PromptEmbedding(PromptTuningConfig config, PretrainedModel model, Generator? gen)
        : base(nameof(PromptEmbedding), config.TotalVirtualTokens, config.TokenDim!.Value, model.Device)
    {
        using var noGrad = torch.no_grad();
        Embedding.weight.normal_(0, 1, gen);
        // A loaded adapter overwrites the table, so (like PEFT) only a new trainable adapter runs the word-based inits.
        if (config.InferenceMode) return;
        switch (config.PromptTuningInit)
        {
            case PromptTuningInit.SampleVocab:
                using (var ids = torch.randint(0, model.VocabSize, [config.TotalVirtualTokens], ScalarType.Int64, model.Device, generator: gen))
                    CopyWordEmbeddings(model, ids);
                break;
            case PromptTuningInit.Text:
                using (var ids = torch.tensor(TextTokenIds(config, model), ScalarType.Int64, model.Device))
                    CopyWordEmbeddings(model, ids);
                break;
        }
    }

    public override bool IsTableOnly => true;

    protected override Tensor Head(Tensor table) => table;

    private void CopyWordEmbeddings(PretrainedModel model, Tensor ids)
    {
        using var rows = model.InputEmbeddings.weight.index_select(0, ids);
        Embedding.weight.copy_(rows);
    }

    /// <summary>The init text's ids (special tokens included, as transformers adds them), cut or repeated to the table length.</summary>
    private static long[] TextTokenIds(PromptTuningConfig config, PretrainedModel model)
    {
        string dir = TokenizerLocator.Resolve(config.TokenizerNameOrPath!, model);
        using var tokenizer = AutoTokenizer.FromFolder(dir);
        var ids = tokenizer.Encode(config.PromptTuningInitText!);
        if (ids.Count == 0)
            throw new PeftConfigException($"PromptTuningConfig: prompt_tuning_init_text \"{config.PromptTuningInitText}\" produced no tokens");
        int total = config.TotalVirtualTokens;
        var result = Enumerable.Range(0, total).Select(i => (long)ids[i % ids.Count]).ToArray();
        long bad = result.FirstOrDefault(id => id >= model.VocabSize, -1);
        if (bad >= 0)
            throw new PeftConfigException($"PromptTuningConfig: tokenizer '{dir}' produced id {bad}, outside the model's vocabulary of {model.VocabSize}");
        return result;
    }
}

/// <summary>
/// Finds a tokenizer folder named in a config the way <see cref="AutoPeftModel"/> finds base models: a path as is
/// (absolute or relative to the working directory), else the name under <c>PEFT_MODEL_ROOT</c> roots and next to the
/// base model's folder (so <c>"gpt2"</c> or <c>"org/gpt2"</c> work when the models live side by side).
/// </summary>
public static class TokenizerLocator
{
    public static string Resolve(string nameOrPath, PretrainedModel model)
    {
        static bool Has(string dir) => File.Exists(Path.Combine(dir, "tokenizer.json"));
        var tried = new List<string>();
        if (Has(nameOrPath)) return nameOrPath;
        tried.Add(Path.GetFullPath(nameOrPath));
        var roots = new List<string>();
        if (Environment.GetEnvironmentVariable("PEFT_MODEL_ROOT") is { Length: > 0 } env) roots.AddRange(env.Split(Path.PathSeparator));
        if (model.NameOrPath.Length > 0 && Path.GetDirectoryName(Path.GetFullPath(model.NameOrPath)) is { } parent) roots.Add(parent);
        foreach (var root in roots)
        {
            foreach (var candidate in new[] { Path.Combine(root, nameOrPath.Replace('/', Path.DirectorySeparatorChar)), Path.Combine(root, nameOrPath.Split('/')[^1]) })
            {
                if (Has(candidate)) return candidate;
                tried.Add(candidate);
            }
        }
        throw new PeftConfigException(
            $"PromptTuningConfig: tokenizer '{nameOrPath}' not found (no tokenizer.json in: {string.Join(", ", tried.Distinct())}); give a folder path or set PEFT_MODEL_ROOT");
    }
}
