using Peft.Training.Tokenization;

namespace Peft.Tests.Tokenization;

public class TokenizerLoadingTests
{
    [Fact]
    public void MissingFolderOrFileNamesIt()
    {
        Assert.Throws<PeftUserException>(() => AutoTokenizer.FromFolder("/no/such/model/dir"));
        using var dir = TokenizerFixtures.CopyWith(null);
        var e = Assert.Throws<PeftUserException>(() => AutoTokenizer.FromFolder(dir.Path));
        Assert.Equal(UserErrorKind.NotFound, e.Kind);
        Assert.Contains("tokenizer.json", e.Message);
        var f = Assert.Throws<PeftUserException>(() => AutoTokenizer.FromFile(Path.Combine(dir.Path, "x.json")));
        Assert.Contains("x.json", f.Message);
    }

    [Fact]
    public void SlowOnlyCheckpointSaysWhy()
    {
        using var dir = TokenizerFixtures.CopyWith(null, ("vocab.txt", "[PAD]\n[UNK]\n"));
        var e = Assert.Throws<PeftUserException>(() => AutoTokenizer.FromFolder(dir.Path));
        Assert.Contains("vocab.txt", e.Message);
    }

    [Theory]
    [InlineData("tokenizer.json", "{ \"model\": ")]
    [InlineData("tokenizer_config.json", "{ bos_token: <s> }")]
    [InlineData("special_tokens_map.json", "[")]
    public void InvalidJsonNamesTheFile(string file, string content)
    {
        using var dir = TokenizerFixtures.CopyWith("llama2-tiny", (file, content));
        var e = Assert.Throws<PeftUserException>(() => AutoTokenizer.FromFolder(dir.Path));
        Assert.Contains(Path.Combine(dir.Path, file), e.Message);
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{\"model\": {\"type\": \"NoSuchModel\", \"vocab\": {}}}")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"zero\"}, \"merges\": []}}")]
    [InlineData("{\"added_tokens\": [{\"content\": \"<s>\"}], \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}")]
    public void UnusableTokenizerJsonNamesTheFile(string content)
    {
        using var dir = TokenizerFixtures.CopyWith(null, ("tokenizer.json", content));
        var e = Assert.Throws<PeftUserException>(() => AutoTokenizer.FromFolder(dir.Path));
        Assert.Contains(Path.Combine(dir.Path, "tokenizer.json"), e.Message);
    }

    [Fact]
    public void FromFileReadsNoConfig()
    {
        using var tok = AutoTokenizer.FromFile(Path.Combine(TokenizerFixtures.Dir("llama2-tiny"), "tokenizer.json"));
        Assert.Null(tok.BosToken);
        Assert.Null(tok.EosTokenId);
        Assert.Equal(new[] { 1, 342, 438 }, tok.Encode("Hello"));        // the file's own template still applies
        Assert.Equal("Hello", tok.Decode(tok.Encode("Hello"), skipSpecialTokens: true));
    }

    [Fact]
    public void SpecialTokensMapWinsAndNullRolesStayAbsent()
    {
        using var dir = TokenizerFixtures.CopyWith("llama2-tiny",
            ("special_tokens_map.json", "{\"eos_token\": \"<s>\", \"pad_token\": {\"content\": \"<unk>\"}}"));
        using var tok = AutoTokenizer.FromFolder(dir.Path);
        Assert.Equal(1, tok.EosTokenId);
        Assert.Equal(0, tok.PadTokenId);
        Assert.Equal(1, tok.BosTokenId);
    }

    [Fact]
    public void ClassDefaultsFromConfigJsonModelType()
    {
        // Like the gpt2 hub repo: tokenizer_config.json names no tokens, config.json says model_type gpt2.
        using var dir = TokenizerFixtures.CopyWith("gpt2-tiny", ("special_tokens_map.json", null),
            ("tokenizer_config.json", "{\"model_max_length\": 1024}"), ("config.json", "{\"model_type\": \"gpt2\"}"));
        using var tok = AutoTokenizer.FromFolder(dir.Path);
        Assert.Equal(4000, tok.EosTokenId);
        Assert.Equal(4000, tok.BosTokenId);
        Assert.Null(tok.PadTokenId);
    }

    [Fact]
    public void ChatTemplateFromJinjaFileAndAddedTokensDecoder()
    {
        using var dir = TokenizerFixtures.CopyWith("gpt2-tiny", ("chat_template.jinja", "{{ messages }}"),
            ("tokenizer_config.json", "{\"added_tokens_decoder\": {\"13\": {\"content\": \".\", \"special\": true}}}"));
        using var tok = (HfTokenizer)AutoTokenizer.FromFolder(dir.Path);
        Assert.Equal("{{ messages }}", tok.ChatTemplate);
        Assert.Contains(13, tok.SpecialIds);
        Assert.Equal("the", tok.Decode(tok.Encode("the."), skipSpecialTokens: true));
    }

    [Fact]
    public void BertWordPieceLoads()
    {
        using var tok = TokenizerFixtures.Load("bert-tiny");
        Assert.Equal("WordPiece", tok.ModelType);
        Assert.Equal(0, tok.PadTokenId);
        Assert.Equal(1, tok.UnkTokenId);
        Assert.Null(tok.BosTokenId);
        Assert.Equal(("[CLS]", "[SEP]"), (tok.SpecialTokens["cls_token"], tok.SpecialTokens["sep_token"]));
        var ids = tok.Encode("Hello tokenizer!");
        Assert.Equal(new[] { "[CLS]", "hello", "token", "##izer", "!", "[SEP]" }, ids.Select(i => tok.IdToToken(i)));
        Assert.Equal("hello tokenizer!", tok.Decode(ids, skipSpecialTokens: true));
        Assert.Equal("[CLS] hello tokenizer! [SEP]", tok.Decode(ids));
    }

    [Fact]
    public void DisposeReleasesAndBlocksFurtherUse()
    {
        var tok = TokenizerFixtures.Load("gpt2-tiny");
        tok.Dispose();
        tok.Dispose();
        Assert.Throws<ObjectDisposedException>(() => tok.Encode("x"));
        Assert.Throws<ObjectDisposedException>(() => tok.Decode(new[] { 1 }));
    }
}

/// <summary>Counts files in the shared temp folder, so it must not run while other tests load tokenizers.</summary>
[Collection(nameof(Peft.Tests.Bench.NonParallel))]
public class TokenizerTempFileCheck
{
    [Fact]
    public void NoTempFilesLeftBehind()
    {
        var before = Directory.GetFiles(Path.GetTempPath(), "peft-tokenizer-*.json").Length;
        using (TokenizerFixtures.Load("llama3-tiny")) { }
        Assert.True(Directory.GetFiles(Path.GetTempPath(), "peft-tokenizer-*.json").Length <= before);
    }
}
