using Peft.Training.Tokenization;

namespace Peft.Cli.Support;

/// <summary>
/// Prints generated text as tokens arrive (transformers' TextStreamer without the prompt). Tokens do not decode
/// independently (spaces are attached by the decoder, a character may span several byte tokens), so each step decodes
/// prompt + everything generated and prints only what is new beyond the decoded prompt.
/// </summary>
internal sealed class TokenStreamer(ITextTokenizer tokenizer, IReadOnlyList<int> promptIds, TextWriter output)
{
    private readonly List<int> _ids = [.. promptIds];
    private readonly string _decodedPrompt = tokenizer.Decode(promptIds, skipSpecialTokens: true);
    private int _printed;

    public void Put(long tokenId)
    {
        _ids.Add(checked((int)tokenId));
        Flush(final: false);
    }

    /// <summary>Prints whatever was held back (an incomplete character at the very end stays as U+FFFD).</summary>
    public void End() => Flush(final: true);

    /// <summary>The text generated so far, as printed (special tokens such as eos are skipped).</summary>
    public string Continuation()
    {
        string full = tokenizer.Decode(_ids, skipSpecialTokens: true);
        // Decoding the whole sequence gets the spacing at the prompt boundary right; if a decoder rewrites the start
        // (so the decoded prompt is no prefix), fall back to the new tokens alone.
        return full.StartsWith(_decodedPrompt, StringComparison.Ordinal)
            ? full[_decodedPrompt.Length..]
            : tokenizer.Decode(_ids.Skip(promptIds.Count), skipSpecialTokens: true);
    }

    private void Flush(bool final)
    {
        string text = Continuation();
        int end = text.Length;
        // U+FFFD at the end is usually the first bytes of a multi-byte character: wait for the rest.
        if (!final) while (end > _printed && text[end - 1] == '\uFFFD') end--;
        if (end <= _printed) return;
        output.Write(text[_printed..end]);
        output.Flush();
        _printed = end;
    }
}
