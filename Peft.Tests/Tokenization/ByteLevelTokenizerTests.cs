using Peft.Training.Tokenization;

namespace Peft.Tests.Tokenization;

/// <summary>Byte-level BPE: gpt2-tiny (GPT-2 regex) and llama3-tiny (Split regex + ByteLevel without regex).</summary>
public class ByteLevelTokenizerTests
{
    public static readonly TheoryData<string, string> Texts = new()
    {
        { "gpt2-tiny", "Hello world! The quick brown fox jumps over the lazy dog." },
        { "gpt2-tiny", "Emoji 😀👍🏽 and CJK 日本語の文章, 中文。" },
        { "gpt2-tiny", "tabs\tand\nnew\r\nlines   and  spaces \n\n end " },
        { "gpt2-tiny", "Numbers 1234567 and don't we'll I'M" },
        { "llama3-tiny", "Hello world! The quick brown fox jumps over the lazy dog." },
        { "llama3-tiny", "Emoji 😀👍🏽 and CJK 日本語の文章, 中文。" },
        { "llama3-tiny", "tabs\tand\nnew\r\nlines   and  spaces \n\n end " },
        { "llama3-tiny", "Numbers 1234567 and don't we'll I'M" },
    };

    [Theory]
    [MemberData(nameof(Texts))]
    public void RoundTripsAndMatchesReferenceBpe(string fixture, string text)
    {
        using var tok = TokenizerFixtures.Load(fixture);
        var ids = tok.Encode(text, addSpecialTokens: false);
        Assert.Equal(text, tok.Decode(ids));
        var reference = new ReferenceBpe(Path.Combine(TokenizerFixtures.Dir(fixture), "tokenizer.json"));
        string pattern = fixture == "gpt2-tiny" ? ReferenceBpe.Gpt2Pattern : ReferenceBpe.Llama3Pattern;
        Assert.Equal(reference.EncodeByteLevel(text, pattern), ids);
    }

    [Fact]
    public void Gpt2FixtureKeepsRealGpt2Ids()
    {
        using var tok = TokenizerFixtures.Load("gpt2-tiny");
        // Real GPT-2 ids: "The"=464, " the"=262, " world"=995, " quick"=2068, "!"=0, "."=13, "é"=2634.
        Assert.Equal(new[] { 464, 2068, 995, 0, 262, 13 }, tok.Encode("The quick world! the."));
        Assert.Equal(new[] { 2634 }, tok.Encode("é"));
        Assert.Equal("Ġworld", tok.IdToToken(995));
        Assert.Equal(995, tok.TokenToId("Ġworld"));
        Assert.Null(tok.TokenToId("no-such-token"));
        Assert.Null(tok.IdToToken(123456));
        // Words whose GPT-2 token lies beyond the kept ranks fall back to smaller pieces.
        Assert.Equal(new[] { "H", "ell", "o" }, tok.Encode("Hello").Select(i => tok.IdToToken(i)));
    }

    [Fact]
    public void Gpt2SpecialTokens()
    {
        using var tok = TokenizerFixtures.Load("gpt2-tiny");
        Assert.Equal(4001, tok.VocabSize);
        Assert.Equal(("<|endoftext|>", 4000), (tok.EosToken, tok.EosTokenId));
        Assert.Equal(("<|endoftext|>", 4000), (tok.BosToken, tok.BosTokenId));
        Assert.Equal(4000, tok.UnkTokenId);
        Assert.Null(tok.PadToken);
        Assert.Null(tok.PadTokenId);
        Assert.Equal(PaddingSide.Right, tok.PaddingSide);
        Assert.Equal(1024, tok.ModelMaxLength);
        Assert.Null(tok.ChatTemplate);

        // GPT-2 has no template post-processor: add_special_tokens changes nothing.
        Assert.Equal(tok.Encode("Hello world"), tok.Encode("Hello world", addSpecialTokens: false));
        Assert.Empty(tok.Encode(""));
        // Special tokens written in the text are matched, as in transformers.
        var ids = tok.Encode("the<|endoftext|>the");
        Assert.Equal(new[] { 1169, 4000, 1169 }, ids);
        Assert.Equal("the<|endoftext|>the", tok.Decode(ids));
        Assert.Equal("thethe", tok.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void Llama3TemplateAddsBeginOfText()
    {
        using var tok = TokenizerFixtures.Load("llama3-tiny");
        Assert.Equal(4005, tok.VocabSize);
        Assert.Equal(("<|begin_of_text|>", 4000), (tok.BosToken, tok.BosTokenId));
        Assert.Equal(("<|eot_id|>", 4004), (tok.EosToken, tok.EosTokenId));
        Assert.Null(tok.PadTokenId);
        Assert.Null(tok.UnkTokenId);
        Assert.Equal(PaddingSide.Left, tok.PaddingSide);
        Assert.Contains("<|start_header_id|>", tok.ChatTemplate);

        var plain = tok.Encode("Hello world", addSpecialTokens: false);
        Assert.Equal(new[] { 39, 695, 78, 995 }, plain);
        Assert.Equal(new[] { 4000 }.Concat(plain), tok.Encode("Hello world"));
        Assert.Equal(new[] { 4000 }, tok.Encode(""));

        var chat = tok.Encode("<|start_header_id|>user<|end_header_id|>hi<|eot_id|>", addSpecialTokens: false);
        Assert.Equal(4002, chat[0]);
        Assert.Equal(4004, chat[^1]);
        Assert.Equal("<|begin_of_text|>Hello world", tok.Decode(tok.Encode("Hello world")));
        Assert.Equal("Hello world", tok.Decode(tok.Encode("Hello world"), skipSpecialTokens: true));
        Assert.Equal("userhi", tok.Decode(chat, skipSpecialTokens: true));
    }

    [Fact]
    public void CleanUpTokenizationSpacesFollowsConfig()
    {
        // llama3-tiny sets clean_up_tokenization_spaces (as Llama-3 does); gpt2-tiny does not.
        const string text = "Hello , world . I 'm here !";
        using var llama3 = TokenizerFixtures.Load("llama3-tiny");
        using var gpt2 = TokenizerFixtures.Load("gpt2-tiny");
        Assert.True(llama3.CleanUpTokenizationSpaces);
        Assert.Equal("Hello, world. I'm here!", llama3.Decode(llama3.Encode(text, false)));
        Assert.Equal(text, gpt2.Decode(gpt2.Encode(text, false)));
    }

    [Fact]
    public void DecodeRejectsNegativeIdsAndAcceptsEmpty()
    {
        using var tok = TokenizerFixtures.Load("gpt2-tiny");
        Assert.Equal("", tok.Decode(Array.Empty<int>()));
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode(new[] { 39, -100 }));
    }
}
