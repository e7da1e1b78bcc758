using Peft.Training.Tokenization;
using TorchSharp;

namespace Peft.Tests.Tokenization;

public class BatchEncodingTokenizerTests
{
    // gpt2-tiny: "Hello world" = H ell o Ġworld = 39 695 78 995; "The" = 464; <|endoftext|> = 4000.
    private static readonly string[] Texts = { "Hello world", "The" };

    [Fact]
    public void RightPaddingWithEosAsPad()
    {
        using var tok = TokenizerFixtures.Load("gpt2-tiny");
        tok.PadToken = tok.EosToken;
        Assert.Equal(4000, tok.PadTokenId);
        var b = tok.EncodeBatch(Texts);
        Assert.Equal(new[] { new long[] { 39, 695, 78, 995 }, new long[] { 464, 4000, 4000, 4000 } }, b.InputIds);
        Assert.Equal(new[] { new long[] { 1, 1, 1, 1 }, new long[] { 1, 0, 0, 0 } }, b.AttentionMask);
    }

    [Fact]
    public void LeftPadding()
    {
        using var tok = TokenizerFixtures.Load("gpt2-tiny");
        tok.PadToken = "<|endoftext|>";
        tok.PaddingSide = PaddingSide.Left;
        var b = tok.EncodeBatch(Texts);
        Assert.Equal(new[] { new long[] { 39, 695, 78, 995 }, new long[] { 4000, 4000, 4000, 464 } }, b.InputIds);
        Assert.Equal(new[] { new long[] { 1, 1, 1, 1 }, new long[] { 0, 0, 0, 1 } }, b.AttentionMask);
    }

    [Fact]
    public void PaddingSideFromConfigAndTemplateTokens()
    {
        using var tok = TokenizerFixtures.Load("llama3-tiny");   // padding_side "left", no pad token
        tok.PadToken = "<|end_of_text|>";
        var b = tok.EncodeBatch(Texts);
        Assert.Equal(new[] { new long[] { 4000, 39, 695, 78, 995 }, new long[] { 4001, 4001, 4001, 4000, 464 } }, b.InputIds);
        Assert.Equal(new[] { new long[] { 1, 1, 1, 1, 1 }, new long[] { 0, 0, 0, 1, 1 } }, b.AttentionMask);

        var noSpecials = tok.EncodeBatch(Texts, addSpecialTokens: false);
        Assert.Equal(new long[] { 4001, 4001, 4001, 464 }, noSpecials.InputIds[1]);
    }

    [Fact]
    public void PadToMultipleOf8()
    {
        using var tok = TokenizerFixtures.Load("gpt2-tiny");
        tok.PadToken = tok.EosToken;
        var b = tok.EncodeBatch(Texts, padToMultipleOf8: true);
        Assert.Equal(new long[] { 39, 695, 78, 995, 4000, 4000, 4000, 4000 }, b.InputIds[0]);
        Assert.Equal(new long[] { 1, 1, 1, 1, 0, 0, 0, 0 }, b.AttentionMask[0]);
        Assert.Equal(new long[] { 1, 0, 0, 0, 0, 0, 0, 0 }, b.AttentionMask[1]);
    }

    [Fact]
    public void TruncationKeepsTheStartAndTemplateTokens()
    {
        using var llama2 = TokenizerFixtures.Load("llama2-tiny");
        var b = llama2.EncodeBatch(new[] { "Hello world! The quick brown fox." }, maxLength: 4, truncation: true);
        Assert.Equal(new long[] { 1, 342, 438, 264 }, b.InputIds[0]);
        b = llama2.EncodeBatch(new[] { "Hello world! The quick brown fox." }, false, maxLength: 3, truncation: true);
        Assert.Equal(new long[] { 342, 438, 264 }, b.InputIds[0]);
        // Without truncation maxLength is ignored (padding="longest" in transformers).
        Assert.Equal(13, llama2.EncodeBatch(new[] { "Hello world! The quick brown fox." }, maxLength: 4).SequenceLength);

        using var bert = TokenizerFixtures.Load("bert-tiny");     // [CLS] ... [SEP]
        b = bert.EncodeBatch(new[] { "hello world! the quick brown fox.", "hello" }, maxLength: 5, truncation: true);
        Assert.Equal(new[] { new long[] { 2, 27, 28, 45, 3 }, new long[] { 2, 27, 3, 0, 0 } }, b.InputIds);
        Assert.Equal(new[] { new long[] { 1, 1, 1, 1, 1 }, new long[] { 1, 1, 1, 0, 0 } }, b.AttentionMask);
    }

    [Fact]
    public void TruncationDefaultsToModelMaxLength()
    {
        using var tok = TokenizerFixtures.Load("gpt2-tiny");     // model_max_length 1024
        string longText = string.Concat(Enumerable.Repeat(" the", 1500));
        Assert.Equal(1024, tok.EncodeBatch(new[] { longText }, truncation: true).SequenceLength);
        Assert.Equal(1500, tok.EncodeBatch(new[] { longText }).SequenceLength);
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.EncodeBatch(new[] { "x" }, maxLength: 0, truncation: true));
    }

    [Fact]
    public void MissingPadTokenIsAClearError()
    {
        using var tok = TokenizerFixtures.Load("llama2-tiny");
        var e = Assert.Throws<InvalidOperationException>(() => tok.EncodeBatch(Texts));
        Assert.Contains("pad token", e.Message);
        Assert.Throws<InvalidOperationException>(() => tok.EncodeBatch(new[] { "x" }, padToMultipleOf8: true));
        // One text needs no padding.
        Assert.Equal(new long[] { 1, 342, 438 }, tok.EncodeBatch(new[] { "Hello" }).InputIds[0]);
        Assert.Throws<ArgumentException>(() => tok.PadToken = "<pad>");   // not in the vocabulary
        tok.PadToken = tok.UnkToken;
        Assert.Equal(new[] { new long[] { 1, 342, 438 }, new long[] { 1, 342, 0 } },
            tok.EncodeBatch(new[] { "Hello", "H" }).InputIds);
    }

    [Fact]
    public void TensorsAreInt64WithBatchShape()
    {
        using var tok = TokenizerFixtures.Load("gpt2-tiny");
        tok.PadToken = tok.EosToken;
        var b = tok.EncodeBatch(Texts);
        using var ids = b.InputIdsTensor();
        using var mask = b.AttentionMaskTensor(torch.CPU);
        Assert.Equal(new long[] { 2, 4 }, ids.shape);
        Assert.Equal(torch.ScalarType.Int64, ids.dtype);
        Assert.Equal(torch.ScalarType.Int64, mask.dtype);
        Assert.Equal(new long[] { 39, 695, 78, 995, 464, 4000, 4000, 4000 }, ids.data<long>().ToArray());
        Assert.Equal(5, mask.sum().item<long>());

        var empty = tok.EncodeBatch(Array.Empty<string>());
        using var e = empty.InputIdsTensor();
        Assert.Equal(new long[] { 0, 0 }, e.shape);
    }
}
