namespace Peft.Training.Tokenization;

/// <summary>
/// Loads Hugging Face fast tokenizers (tokenizer.json) the way transformers' AutoTokenizer does. The result is an
/// <see cref="HfTokenizer"/>; cast to it for extras (ModelMaxLength, SpecialIds, ...).
/// </summary>
public static class AutoTokenizer
{
    /// <summary>
    /// Loads <c>modelDir/tokenizer.json</c>, configured by tokenizer_config.json, special_tokens_map.json
    /// (which wins, as in transformers), chat_template.jinja and config.json's model_type when present.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">There is no tokenizer.json in the folder.</exception>
    /// <exception cref="InvalidDataException">A JSON file is malformed or the tokenizer cannot be built from it.</exception>
    public static ITextTokenizer FromFolder(string modelDir)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        if (!Directory.Exists(modelDir))
            throw new PeftUserException($"Tokenizer folder '{modelDir}' does not exist.", UserErrorKind.NotFound);
        string path = Path.Combine(modelDir, "tokenizer.json");
        if (!File.Exists(path))
        {
            // Slow-only checkpoints are common enough that the message should say why they fail.
            string? slow = new[] { "tokenizer.model", "vocab.txt", "vocab.json", "spiece.model" }
                .FirstOrDefault(f => File.Exists(Path.Combine(modelDir, f)));
            throw new PeftUserException(
                $"No tokenizer.json in '{modelDir}'." + (slow is null ? "" :
                    $" Found {slow}, but only fast tokenizers (tokenizer.json) are supported; convert it with " +
                    "transformers (AutoTokenizer.from_pretrained(...).save_pretrained(...)) first."), UserErrorKind.NotFound);
        }
        return new HfTokenizer(path, TokenizerSettings.Load(modelDir));
    }

    /// <summary>
    /// Loads a tokenizer.json on its own, like <c>PreTrainedTokenizerFast(tokenizer_file=...)</c>: no config files
    /// are read, so no bos/eos/pad roles are known and padding defaults to the right.
    /// </summary>
    public static ITextTokenizer FromFile(string tokenizerJsonPath)
    {
        ArgumentNullException.ThrowIfNull(tokenizerJsonPath);
        if (!File.Exists(tokenizerJsonPath))
            throw new PeftUserException($"Tokenizer file '{tokenizerJsonPath}' does not exist.", UserErrorKind.NotFound);
        return new HfTokenizer(tokenizerJsonPath, TokenizerSettings.Load(null));
    }
}
