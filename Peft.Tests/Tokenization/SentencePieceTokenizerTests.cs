using System.Text;
using System.Text.Json.Nodes;

namespace Peft.Tests.Tokenization;

/// <summary>Llama-2/Mistral-style BPE with byte fallback (llama2-tiny).</summary>
public class SentencePieceTokenizerTests
{
    [Theory]
    [InlineData("Hello world! The quick brown fox.")]
    [InlineData("Emoji 😀👍🏽 and CJK 日本語の文章, 中文。")]
    [InlineData("tabs\tand\nnew\r\nlines   and  spaces \n\n end ")]
    [InlineData("  leading spaces, naïve café")]
    public void RoundTripsAndMatchesReferenceBpe(string text)
    {
        using var tok = TokenizerFixtures.Load("llama2-tiny");
        var ids = tok.Encode(text, addSpecialTokens: false);
        Assert.Equal(text, tok.Decode(ids));
        Assert.Equal(new[] { 1 }.Concat(ids), tok.Encode(text));
        var reference = new ReferenceBpe(Path.Combine(TokenizerFixtures.Dir("llama2-tiny"), "tokenizer.json"));
        Assert.Equal(reference.EncodeSentencePiece(text), ids);

        // The pieces spell the normalized text ("▁" prepended, spaces as "▁"), byte tokens included.
        var bytes = new List<byte>();
        foreach (var piece in ids.Select(i => tok.IdToToken(i)!))
            if (piece.Length == 6 && piece.StartsWith("<0x")) bytes.Add(Convert.ToByte(piece[3..5], 16));
            else bytes.AddRange(Encoding.UTF8.GetBytes(piece));
        Assert.Equal("▁" + text.Replace(" ", "▁"), Encoding.UTF8.GetString(bytes.ToArray()));
    }

    [Fact]
    public void ByteFallbackForCharactersOutsideTheVocab()
    {
        using var tok = TokenizerFixtures.Load("llama2-tiny");
        // Byte tokens sit at 3 + byte, as in Llama-2 (<0x0A> = 13).
        Assert.Equal(3 + 0xC3, tok.TokenToId("<0xC3>"));
        int space = tok.TokenToId("▁")!.Value;
        Assert.Equal(new[] { space, 3 + 0xC3, 3 + 0xA9 }, tok.Encode("é", addSpecialTokens: false));
        // "中" is a piece, "文" (E6 96 87) is not.
        Assert.Equal(new[] { space, tok.TokenToId("中")!.Value, 3 + 0xE6, 3 + 0x96, 3 + 0x87 }, tok.Encode("中文", false));
        Assert.Equal(new[] { 3 + 0x09, 3 + 0x0A }, tok.Encode("a\t\nb", false).Skip(1).Take(2));
        Assert.Equal(13, tok.TokenToId("<0x0A>"));
        Assert.Equal(new[] { 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80 }, tok.Encode("😀", false).Skip(1));
    }

    [Fact]
    public void SpecialTokensAndDecoding()
    {
        using var tok = TokenizerFixtures.Load("llama2-tiny");
        Assert.Equal(593, tok.VocabSize);
        Assert.Equal(("<s>", 1), (tok.BosToken, tok.BosTokenId));
        Assert.Equal(("</s>", 2), (tok.EosToken, tok.EosTokenId));
        Assert.Equal(0, tok.UnkTokenId);
        Assert.Null(tok.PadToken);              // "pad_token": null in tokenizer_config.json
        Assert.Null(tok.ModelMaxLength);        // 1e30 sentinel means no limit
        Assert.Equal(new[] { 0, 1, 2 }, tok.SpecialIds.Order());

        Assert.Equal(new[] { 1 }, tok.Encode(""));
        Assert.Empty(tok.Encode("", addSpecialTokens: false));
        var ids = tok.Encode("Hello world");
        Assert.Equal(new[] { 1, 342, 438, 264, 333, 576, 568 }, ids);
        Assert.Equal(new[] { "<s>", "▁H", "ello", "▁w", "or", "l", "d" }, ids.Select(i => tok.IdToToken(i)));
        // Same strings as transformers' LlamaTokenizerFast.
        Assert.Equal("<s> Hello world", tok.Decode(ids));
        Assert.Equal("Hello world", tok.Decode(ids, skipSpecialTokens: true));
        Assert.Equal("Hello world</s>", tok.Decode(ids.Skip(1).Append(2)));
        // "</s>" typed in the text is the eos token.
        Assert.Equal(2, tok.Encode("Hello</s>", false)[^1]);
    }

    [Fact]
    public void AddEosTokenInConfigRebuildsTheTemplateForLlamaClasses()
    {
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(TokenizerFixtures.Dir("llama2-tiny"), "tokenizer_config.json")))!;
        cfg["add_eos_token"] = true;
        using (var dir = TokenizerFixtures.CopyWith("llama2-tiny", ("tokenizer_config.json", cfg.ToJsonString())))
        using (var tok = Peft.Training.Tokenization.AutoTokenizer.FromFolder(dir.Path))
        {
            Assert.Equal(new[] { 1, 342, 438, 264, 333, 576, 568, 2 }, tok.Encode("Hello world"));
            Assert.Equal(new[] { 342, 438, 264, 333, 576, 568 }, tok.Encode("Hello world", false));
            // Truncation keeps both ends' special tokens.
            var batch = tok.EncodeBatch(new[] { "Hello world" }, maxLength: 4, truncation: true);
            Assert.Equal(new long[] { 1, 342, 438, 2 }, batch.InputIds[0]);
        }

        cfg["add_eos_token"] = false;
        cfg["add_bos_token"] = false;
        using (var dir = TokenizerFixtures.CopyWith("llama2-tiny", ("tokenizer_config.json", cfg.ToJsonString())))
        using (var tok = Peft.Training.Tokenization.AutoTokenizer.FromFolder(dir.Path))
            Assert.Equal(tok.Encode("Hello world", false), tok.Encode("Hello world"));
    }
}
