using Peft.Training.Data.Corpora;

namespace Peft.Tests.Data;

public class CorpusParsingTests
{
    [Theory]
    [InlineData("1790_george_washington_n.txt", 1790, "George Washington", "none")]
    [InlineData("1803_thomas_jefferson_dr.json", 1803, "Thomas Jefferson", "Democratic-Republican")]
    [InlineData("sotu/data/1897_william_mc_kinley_r.txt", 1897, "William McKinley", "Republican")]
    [InlineData("1865_andrew_johnson_nu.txt", 1865, "Andrew Johnson", "National Union")]
    [InlineData("2021_joseph_r_biden_d.txt", 2021, "Joseph R Biden", "Democratic")]
    public void SotuFileName_GivesYearPresidentAndParty(string file, int year, string president, string party)
    {
        var n = SotuCorpus.ParseFileName(file)!;
        Assert.Equal((year, president, party), (n.Year, n.President, n.Party));
        Assert.Equal(Path.GetFileNameWithoutExtension(file), n.Stem);
    }

    [Theory]
    [InlineData("README.md")]
    [InlineData("file_list.json")]
    [InlineData("179_short_year_d.txt")]
    public void SotuFileName_OtherFiles_AreNull(string file) => Assert.Null(SotuCorpus.ParseFileName(file));

    [Fact]
    public void SotuFileName_UnknownParty_IsInvalidData() =>
        Assert.Throws<PeftUserException>(() => SotuCorpus.ParseFileName("1790_george_washington_zz.txt"));

    [Fact]
    public void SotuChunks_AreWholeSentencesOfOneAddressAndSplit()
    {
        var name = SotuCorpus.ParseFileName("1801_thomas_jefferson_dr.txt")!;
        string sentence = "It is a circumstance of sincere gratification to me that on meeting the great council of our nation, I am able to announce to them, on grounds of reasonable certainty, that the wars and troubles which have for so many years afflicted our sister nations have at length come to an end.";
        string text = string.Join("  ", Enumerable.Repeat(sentence, 12)) + "\n";
        var chunks = SotuCorpus.Chunk(name, text);
        Assert.True(chunks.Count > 1);
        Assert.All(chunks, c => Assert.True(c.Text.Length <= SotuCorpus.ChunkChars));
        Assert.All(chunks, c => Assert.EndsWith("end.", c.Text));
        Assert.Single(chunks.Select(c => c.Split).Distinct());
        Assert.Equal(TextCleaner.NormalizeWhitespace(text), string.Join(" ", chunks.Select(c => c.Text)));
    }

    [Fact]
    public void Splits_ArePinnedToSha256Buckets()
    {
        // Expected buckets computed independently: int.from_bytes(sha256(id)[:4], "big") % 100.
        Assert.Equal(50, DataSplits.Bucket("austen/emma/1"));
        Assert.Equal(0, DataSplits.Bucket("sotu/1790_george_washington_n"));
        Assert.Equal(92, DataSplits.Bucket("spam-assassin/spam-1/00001"));
        Assert.Equal(98, DataSplits.Bucket("austen/emma/18"));
        Assert.Equal(DataSplits.Train, DataSplits.Assign("austen/emma/1"));
        Assert.Equal(DataSplits.Validation, DataSplits.Assign("austen/emma/3"));
        Assert.Equal(DataSplits.Test, DataSplits.Assign("austen/emma/18"));
    }

    [Fact]
    public void Splits_Are90_5_5()
    {
        var counts = Enumerable.Range(0, 20_000).Select(i => DataSplits.Assign($"unit/{i}"))
            .GroupBy(s => s).ToDictionary(g => g.Key, g => g.Count() / 20_000.0);
        Assert.InRange(counts[DataSplits.Train], 0.885, 0.915);
        Assert.InRange(counts[DataSplits.Validation], 0.043, 0.057);
        Assert.InRange(counts[DataSplits.Test], 0.043, 0.057);
    }

    [Fact]
    public void NormalizeWhitespace_CollapsesAndDropsControls()
    {
        Assert.Equal("a b c d", TextCleaner.NormalizeWhitespace("\uFEFF  a\t\tb\u00A0\n c\u0002 \r\nd  "));
        Assert.Equal("", TextCleaner.NormalizeWhitespace(" \n\t "));
    }

    [Fact]
    public void Paragraphs_JoinWrappedLinesAtBlankLines()
    {
        string[] lines = ["", "First line", "  wrapped here.", "   ", "Second.", "", "", "Third", ""];
        Assert.Equal(["First line wrapped here.", "Second.", "Third"], TextCleaner.Paragraphs(lines));
    }

    [Fact]
    public void StripGutenberg_DropsHeaderAndFooter()
    {
        string[] lines = ["The Project Gutenberg eBook of Emma", "*** START OF THE PROJECT GUTENBERG EBOOK EMMA ***",
            "EMMA", "", "Text.", "*** END OF THE PROJECT GUTENBERG EBOOK EMMA ***", "License"];
        Assert.Equal(["EMMA", "", "Text."], TextCleaner.StripGutenberg(lines));
        Assert.Equal(["plain", "text"], TextCleaner.StripGutenberg(["plain", "text"]));
        Assert.Equal(["Body"], TextCleaner.StripGutenberg(["Body", "End of the Project Gutenberg EBook of Persuasion"]));
    }

    [Fact]
    public void ChunkSentences_CutsOverlongSentencesAtSpaces()
    {
        string longSentence = string.Join(" ", Enumerable.Repeat("word", 100)) + ".";
        var chunks = TextCleaner.ChunkSentences("Short one. " + longSentence + " Next one.", 60);
        Assert.All(chunks, c => Assert.True(c.Length <= 60, c));
        Assert.Equal("Short one. " + longSentence + " Next one.", string.Join(" ", chunks));
    }

    [Fact]
    public void Austen_DropsFrontMatterHeadingsAndEndMatter_SplitsByChapter()
    {
        string?[] lines = ["EMMA", "", "by", "", "Jane Austen", "", "VOLUME I", "", "CHAPTER I", "",
            "Emma Woodhouse, handsome, clever, and rich, with a comfortable home", "and happy disposition.", "",
            "* * * * *", "", "\"Yes.\"", null, "CHAPTER II", "", "Mr. Weston was a native of Highbury.", "",
            "FINIS", "", "A note by a later editor."];
        var paras = AustenCorpus.FromLines("emma", "Emma", lines).ToList();
        Assert.Equal(["Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition.",
            "\"Yes.\"", "Mr. Weston was a native of Highbury."], paras.Select(p => p.Text));
        Assert.Equal([1, 1, 2], paras.Select(p => p.Chapter));
        Assert.All(paras, p => Assert.Equal("Emma", p.Book));
        Assert.Equal(DataSplits.Assign("austen/emma/1"), paras[0].Split);
        Assert.Equal(DataSplits.Assign("austen/emma/2"), paras[2].Split);
    }

    [Fact]
    public void Austen_KeepsLongFrontMatter()
    {
        string?[] lines = ["NORTHANGER ABBEY", "", "ADVERTISEMENT BY THE AUTHORESS", "",
            "THIS little work was finished in the year 1803, and intended for immediate publication.", "",
            "CHAPTER 1", "", "No one who had ever seen Catherine Morland in her infancy would have supposed her born to be an heroine."];
        var paras = AustenCorpus.FromLines("northangerabbey", "Northanger Abbey", lines).ToList();
        Assert.Equal([0, 1], paras.Select(p => p.Chapter));
        Assert.StartsWith("THIS little work", paras[0].Text);
    }

    [Fact]
    public void MobyDick_SkipsHeadingParagraph()
    {
        var paras = MobyDickCorpus.FromText("1", "CHAPTER 1. Loomings.\n\nCall me Ishmael. Some years ago\nnever mind.\n\nThere now is your insular city.\n").ToList();
        Assert.Equal(["Call me Ishmael. Some years ago never mind.", "There now is your insular city."], paras.Select(p => p.Text));
        Assert.All(paras, p => Assert.Equal(DataSplits.Assign("moby-dick/1"), p.Split));
    }
}
