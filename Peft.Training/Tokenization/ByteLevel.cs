using System.Text.RegularExpressions;

namespace Peft.Training.Tokenization;

/// <summary>
/// GPT-2's byte-level scheme as the HF tokenizers ByteLevel pre-tokenizer implements it: text is split with the
/// GPT-2 regex, each piece's UTF-8 bytes are written as printable stand-in characters (space → 'Ġ', newline → 'Ċ'),
/// and BPE works on those characters. Every byte has a symbol, so no input is ever unknown.
/// </summary>
public static partial class ByteLevel
{
    /// <summary>The GPT-2 pre-tokenization pattern (ByteLevel with use_regex=true).</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    [GeneratedRegex(Gpt2Pattern)]
    public static partial Regex Gpt2Regex();

    private static readonly char[] ByteToCharMap = BuildMap();

    /// <summary>
    /// GPT-2's bytes_to_unicode: printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves, the
    /// other 68 bytes (controls, space, 0x7F–0xA0, soft hyphen) take U+0100 upwards in byte order.
    /// </summary>
    private static char[] BuildMap()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)(256 + next++);
        }
        return map;
    }

    /// <summary>The stand-in character of one byte.</summary>
    public static char ByteToChar(byte b) => ByteToCharMap[b];

    /// <summary>The stand-in string of a byte sequence (how vocab and merges spell tokens).</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToCharMap[bytes[i]];
        return new string(chars);
    }
}
