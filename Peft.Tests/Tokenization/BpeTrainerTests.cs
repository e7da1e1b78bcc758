using Peft.Tests.Support;
using System.Security.Cryptography;
using Peft.Tests.Data;
using Peft.Training.Data.Corpora;
using Peft.Training.Tokenization;

namespace Peft.Tests.Tokenization;

public class BpeTrainerTests
{
    private static readonly string[] TrainTexts =
        Jsonl.ReadTexts(RepoFiles.Path("data", "austen.jsonl"), DataSplits.Train).Take(400).ToArray();

    private static readonly string[] HeldOut =
    [
        .. Jsonl.ReadTexts(RepoFiles.Path("data", "austen.jsonl"), DataSplits.Validation).Take(40),
        .. Jsonl.ReadTexts(RepoFiles.Path("data", "sotu_pre1900.jsonl"), DataSplits.Validation).Take(10),
        "  two  spaces,\ttabs\tand\n\nnew lines\r\n", "Whale 🐳, naïve café, 日本語, Ελληνικά, ½ — “quotes”.",
        "numbers 1790 and 3,000,000 florins; it's we'll they'd I'M", "\u0000\u0007 control bytes\u007f", "",
    ];

    private static BpeModel Train(IEnumerable<string> texts, int vocabSize, int minFrequency = 2)
    {
        var trainer = new BpeTrainer(new BpeTrainerOptions { VocabSize = vocabSize, MinFrequency = minFrequency });
        trainer.Feed(texts);
        return trainer.Train();
    }

    private static TempDir Saved(BpeModel model)
    {
        var dir = new TempDir();
        BpeTokenizerWriter.Save(model, dir.Path);
        return dir;
    }

    [Fact]
    public void Trained_LoadsInHfTokenizers_AndRoundTripsExactly()
    {
        var model = Train(TrainTexts, 1000);
        Assert.Equal(1000, model.Vocab.Count);
        using var dir = Saved(model);
        using var tok = (HfTokenizer)AutoTokenizer.FromFolder(dir.Path);
        Assert.Equal(1000, tok.VocabSize);
        Assert.Equal("BPE", tok.ModelType);
        foreach (var text in HeldOut)
            Assert.Equal(text, tok.Decode(tok.Encode(text, addSpecialTokens: false)));
    }

    [Fact]
    public void MergesAppliedInRankOrder_GiveTheLoadedTokenizersIds()
    {
        using var dir = Saved(Train(TrainTexts, 1000));
        using var tok = AutoTokenizer.FromFolder(dir.Path);
        var reference = new ReferenceBpe(Path.Combine(dir.Path, "tokenizer.json"));
        foreach (var text in HeldOut)
            Assert.Equal(reference.EncodeByteLevel(text, ByteLevel.Gpt2Pattern), tok.Encode(text, addSpecialTokens: false));
        // Held-out text compresses: merges learnt on Austen apply to unseen Austen.
        var sample = HeldOut[0];
        Assert.True(tok.Encode(sample, addSpecialTokens: false).Count < System.Text.Encoding.UTF8.GetByteCount(sample) / 2);
    }

    [Fact]
    public void SpecialTokens_HaveFixedIdsAndRoles()
    {
        using var dir = Saved(Train(TrainTexts, 400));
        using var tok = (HfTokenizer)AutoTokenizer.FromFolder(dir.Path);
        Assert.Equal((0, 1), (tok.TokenToId("<|endoftext|>"), tok.TokenToId("<|pad|>")));
        Assert.Equal((0, 0, 0, 1), (tok.BosTokenId, tok.EosTokenId, tok.UnkTokenId, tok.PadTokenId));
        Assert.Equal(2, tok.TokenToId(ByteLevel.ByteToChar(0).ToString()));       // bytes follow in byte order
        Assert.Equal(2 + 'a', tok.TokenToId("a"));
        var ids = tok.Encode("Emma<|endoftext|>Harriet", addSpecialTokens: false);
        Assert.Contains(0, ids);
        Assert.Equal("Emma<|endoftext|>Harriet", tok.Decode(ids));
        Assert.Equal("EmmaHarriet", tok.Decode(ids, skipSpecialTokens: true));
        Assert.Equal(tok.Encode("Emma", addSpecialTokens: false), tok.Encode("Emma"));   // GPT-2 style: nothing added
    }

    [Fact]
    public void SameInput_GivesIdenticalFiles_WhateverTheOrder()
    {
        using var a = Saved(Train(TrainTexts, 600));
        using var b = Saved(Train(TrainTexts.Reverse(), 600));
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(a.Path, f)), File.ReadAllBytes(Path.Combine(b.Path, f)));
    }

    [Fact]
    public void IncrementalCounts_MatchRecountingFromScratch()
    {
        var texts = TrainTexts.Take(60).ToArray();
        var model = Train(texts, 700);
        Assert.Equal(NaiveBpe.Merges(texts, 700, minFrequency: 2), model.Merges);
    }

    [Fact]
    public void Ties_GoToTheSmallerPairIds()
    {
        // "ab" and "ba" both occur once: (a, b) has the smaller left id, then (b, a).
        var model = Train(["ab", "ba"], 260, minFrequency: 1);
        Assert.Equal([("a", "b"), ("b", "a")], model.Merges);
        Assert.Equal(["ab", "ba"], model.Vocab.Skip(258));
    }

    [Fact]
    public void StopsWhenNoPairIsFrequentEnough()
    {
        var model = Train(["abc", "xyz"], 1000);
        Assert.Empty(model.Merges);
        Assert.Equal(258, model.Vocab.Count);
    }

    [Fact]
    public void VocabularyBelowBytesAndSpecials_IsRejected() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new BpeTrainer(new BpeTrainerOptions { VocabSize = 257 }));

    [Fact]
    public void DemoTokenizer_IsReproducibleFromTheCommittedData()
    {
        // models/peft-demo was trained with: peft tokenizer train --data data/austen.jsonl --data data/sotu_pre1900.jsonl
        var trainer = new BpeTrainer(new BpeTrainerOptions { VocabSize = 8192 });
        foreach (var f in new[] { "austen.jsonl", "sotu_pre1900.jsonl" })
            trainer.Feed(Jsonl.ReadTexts(RepoFiles.Path("data", f), DataSplits.Train));
        using var dir = Saved(trainer.Train());
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            Assert.Equal(SHA256.HashData(File.ReadAllBytes(RepoFiles.Path("models", "peft-demo", f))),
                SHA256.HashData(File.ReadAllBytes(Path.Combine(dir.Path, f))));

        using var tok = AutoTokenizer.FromFolder(RepoFiles.Path("models", "peft-demo"));
        Assert.Equal(8192, tok.VocabSize);
        string text = Jsonl.ReadTexts(RepoFiles.Path("data", "sotu_pre1900.jsonl"), DataSplits.Test).First();
        Assert.Equal(text, tok.Decode(tok.Encode(text)));
    }
}
