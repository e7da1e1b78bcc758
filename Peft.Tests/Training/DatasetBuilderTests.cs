using Peft.Tests.Support;
using Peft.Tests.Tokenization;
using Peft.Training.Data;
using Peft.Training.Models;

namespace Peft.Tests.Training;

/// <summary>Data files → tokenized examples: every format, completion-only masking, packing, splits and bad rows.</summary>
public class DatasetBuilderTests
{
    private static string Write(TempDir dir, string name, string content)
    {
        string p = dir.File(name);
        File.WriteAllText(p, content.Replace("\r\n", "\n"));
        return p;
    }

    private static long[] Ids(Peft.Training.Tokenization.ITextTokenizer tok, string text, bool special = false) =>
        tok.Encode(text, special).Select(i => (long)i).ToArray();

    private static string Trained(Peft.Training.Tokenization.ITextTokenizer tok, Example e) =>
        tok.Decode(e.Labels.Where(l => l != -100).Select(l => (int)l));

    [Fact]
    public void InstructionRowsTrainOnTheResponseOnly()
    {
        using var dir = new TempDir();
        using var tok = TinyModels.Tokenizer();
        string file = Write(dir, "d.jsonl", """
            {"instruction": "Say hi", "output": "hi"}

            {"instruction": "Add", "input": "2 and 3", "output": "5"}
            """);
        var ds = DatasetBuilder.Load(file, tok);
        Assert.Equal(2, ds.Count);
        var e = ds.Examples[0];
        var prompt = Ids(tok, DatasetBuilder.AlpacaPrompt("Say hi", null), special: true);
        Assert.Equal([.. prompt, .. Ids(tok, "hi"), 256L], e.InputIds);
        Assert.All(e.Labels[..prompt.Length], l => Assert.Equal(-100, l));
        Assert.Equal("hi<|endoftext|>", Trained(tok, e));
        Assert.Contains("### Input:\n2 and 3", tok.Decode(ds.Examples[1].InputIds.Select(i => (int)i)));
        var all = DatasetBuilder.Load(file, tok, new DatasetOptions { CompletionOnly = false });
        Assert.Equal(all.Examples[0].InputIds, all.Examples[0].Labels);
    }

    [Fact]
    public void ChatRowsUseTheTokenizersTemplateFamily()
    {
        using var dir = new TempDir();
        using var tok = TokenizerFixtures.Load("llama3-tiny");
        string file = Write(dir, "chat.jsonl", """
            {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]}
            """);
        var e = DatasetBuilder.Load(file, tok).Examples[0];
        const string expected = "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello there<|eot_id|>";
        Assert.Equal(Ids(tok, expected), e.InputIds);
        Assert.Equal("Hello there<|eot_id|>", Trained(tok, e));
    }

    [Fact]
    public void ChatWithoutATemplateUsesChatML()
    {
        using var dir = new TempDir();
        using var tok = TinyModels.Tokenizer();
        string file = Write(dir, "chat.json", """[{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}]""");
        var e = DatasetBuilder.Load(file, tok).Examples[0];
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n", tok.Decode(e.InputIds.Select(i => (int)i)));
        Assert.Equal("Yo<|im_end|>", Trained(tok, e));
    }

    [Fact]
    public void Llama2AndZephyrTemplatesAreRecognised()
    {
        var msgs = new[] { new ChatMessage("system", "S"), new ChatMessage("user", "U"), new ChatMessage("assistant", "A") };
        var llama2 = ChatTemplates.Render(msgs, "{% if messages[0]['role'] == 'system' %}...[INST]...", "<s>", "</s>");
        Assert.Equal("<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s>", string.Concat(llama2.Select(s => s.Text)));
        Assert.Equal(" A </s>", string.Concat(llama2.Where(s => s.Train).Select(s => s.Text)));
        var zephyr = ChatTemplates.Render(msgs[1..], "{% for message in messages %}<|user|>...", null, "</s>");
        Assert.Equal("<|user|>\nU</s>\n<|assistant|>\nA</s>\n", string.Concat(zephyr.Select(s => s.Text)));
    }

    [Fact]
    public void CsvClassificationMapsStringLabelsAndHandlesQuotes()
    {
        using var dir = new TempDir();
        using var tok = TinyModels.Tokenizer();
        string file = Write(dir, "cls.csv", "text,label\n\"good, really\ngood\",pos\nbad,neg\n\"say \"\"meh\"\"\",neg\n");
        var ds = DatasetBuilder.Load(file, tok, new DatasetOptions { Task = TaskType.SequenceClassification });
        Assert.Equal(["neg", "pos"], ds.LabelNames);
        Assert.Equal([1L, 0L, 0L], ds.Examples.Select(e => e.Labels[0]));
        Assert.Equal(Ids(tok, "good, really\ngood", true), ds.Examples[0].InputIds);
        Assert.Equal(Ids(tok, "say \"meh\"", true), ds.Examples[2].InputIds);
    }

    [Fact]
    public void BadRowsNameTheFileAndLineOrAreSkippedAndCounted()
    {
        using var dir = new TempDir();
        using var tok = TinyModels.Tokenizer();
        string file = Write(dir, "d.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"broken\"\n{\"text\": 5}\n{\"txt\": \"x\"}\n");
        var e = Assert.Throws<DataFormatException>(() => DatasetBuilder.Load(file, tok));
        Assert.StartsWith($"{file}:2: invalid JSON", e.Message);
        var ds = DatasetBuilder.Load(file, tok, new DatasetOptions { SkipBadRows = true });
        Assert.Equal(4, ds.Stats.RowsRead);
        Assert.Equal(2, ds.Stats.BadRowsSkipped); // line 2 (JSON) and line 4 (no text field); 5 is read as "5"
        Assert.Contains(ds.Stats.SkippedMessages, m => m.StartsWith($"{file}:4: field 'text' is missing", StringComparison.Ordinal));

        string csv = Write(dir, "d.csv", "text,label\na,1\nb,2,3\n");
        var c = Assert.Throws<DataFormatException>(() => DatasetBuilder.Load(csv, tok, new DatasetOptions { Task = TaskType.SequenceClassification }));
        Assert.Equal($"{csv}:3: expected 2 columns (text, label), got 3", c.Message);
        string odd = Write(dir, "odd.jsonl", "{\"question\": \"?\"}\n");
        Assert.Contains("cannot tell the data format", Assert.Throws<DataFormatException>(() => DatasetBuilder.Load(odd, tok)).Message);
        Assert.Contains("cannot train a CAUSAL_LM model", Assert.Throws<DataFormatException>(() => DatasetBuilder.Load(csv, tok, new DatasetOptions { SkipBadRows = true })).Message);
    }

    [Fact]
    public void PlainTextIsPackedIntoBlocks()
    {
        using var dir = new TempDir();
        using var tok = TinyModels.Tokenizer();
        string file = Write(dir, "t.txt", "abcdefghij\nklm\n\nnopqrstuvwxyz\n");
        var ds = DatasetBuilder.Load(file, tok, new DatasetOptions { BlockSize = 8 });
        // "abcdefghij\nklm" + eos + "nopqrstuvwxyz" + eos = 29 tokens → 3 blocks of 8 (the tail of 5 is dropped).
        Assert.Equal(3, ds.Count);
        Assert.All(ds.Examples, e => Assert.Equal(8, e.InputIds.Length));
        Assert.Equal(256L, ds.Examples[1].InputIds[6]);
        Assert.Equal(ds.Examples[0].InputIds, ds.Examples[0].Labels);
    }

    [Fact]
    public void TokenizedRowsAndSeq2SeqRows()
    {
        using var dir = new TempDir();
        using var tok = TinyModels.Tokenizer();
        string file = Write(dir, "tok.jsonl", """
            {"input_ids": [5, 6, 7, 8], "attention_mask": [1, 1, 1, 0]}
            {"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}
            """);
        var ds = DatasetBuilder.Load(file, null);
        Assert.Equal([5L, 6, 7, -100], ds.Examples[0].Labels);
        Assert.Equal([-100L, 2, 3], ds.Examples[1].Labels);
        string bad = Write(dir, "bad.jsonl", """{"input_ids": [1, "x"]}""");
        Assert.Equal($"{bad}:1: field 'input_ids'[1] must be an integer, got \"x\"", Assert.Throws<DataFormatException>(() => DatasetBuilder.Load(bad, null)).Message);

        string s2s = Write(dir, "s2s.jsonl", """{"prompt": "Q: 1+1?\nA: ", "completion": "2"}""");
        var e = DatasetBuilder.Load(s2s, tok).Examples[0];
        Assert.Equal("2<|endoftext|>", Trained(tok, e));
        var enc = DatasetBuilder.Load(s2s, tok, new DatasetOptions { Task = TaskType.Seq2SeqLM }).Examples[0];
        Assert.Equal(Ids(tok, "2", true), enc.Labels);
    }

    [Fact]
    public void TokenClassificationLabelsTheFirstTokenOfEachWord()
    {
        using var dir = new TempDir();
        using var tok = TokenizerFixtures.Load("gpt2-tiny");
        string file = Write(dir, "ner.jsonl", """{"tokens": ["John", "lives", "in", "Newcastle"], "ner_tags": ["B-PER", "O", "O", "B-LOC"]}""");
        var ds = DatasetBuilder.Load(file, tok, new DatasetOptions { Task = TaskType.TokenClassification });
        var e = ds.Examples[0];
        Assert.Equal(["B-LOC", "B-PER", "O"], ds.LabelNames);
        Assert.Equal(Ids(tok, "John lives in Newcastle"), e.InputIds);
        var labelled = e.Labels.Select((l, i) => (l, i)).Where(x => x.l != -100).ToList();
        Assert.Equal([1L, 2, 2, 0], labelled.Select(x => x.l));
        int lastWord = labelled[^1].i;
        Assert.StartsWith(" Newc", tok.Decode(e.InputIds[lastWord..].Select(i => (int)i)));
    }

    [Fact]
    public void SplitIsDeterministicAndDisjoint()
    {
        var ds = TinyModels.TextBlocks(32);
        var (a1, b1) = ds.Split(0.2, 7);
        var (a2, b2) = ds.Split(0.2, 7);
        Assert.Equal(ds.Count, a1.Count + b1.Count);
        Assert.Equal((int)Math.Round(ds.Count * 0.2), b1.Count);
        Assert.Equal(b1.Examples, b2.Examples);
        Assert.Empty(a1.Examples.Intersect(b1.Examples));
    }
}
