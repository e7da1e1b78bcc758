using System.Text.Json;
using Peft.Training.Data.Corpora;

namespace Peft.Tests.Data;

/// <summary>
/// The corpora committed under data/ (written by `peft data prepare --out data --demo-subset`): they parse, hold
/// the expected records per split, and each chapter/address sits in exactly one split.
/// </summary>
public class CommittedDataTests
{
    private static List<JsonElement> Load(string file) => Jsonl.Read(RepoFiles.Path("data", file)).ToList();

    private static Dictionary<string, int> BySplit(IEnumerable<JsonElement> records) =>
        records.GroupBy(r => r.GetProperty("split").GetString()!).ToDictionary(g => g.Key, g => g.Count());

    private static void AssertCleanText(JsonElement r)
    {
        string t = r.GetProperty("text").GetString()!;
        Assert.False(string.IsNullOrWhiteSpace(t));
        Assert.Equal(TextCleaner.NormalizeWhitespace(t), t);
    }

    [Fact]
    public void Austen_SixNovels_SplitByChapter()
    {
        var records = Load("austen.jsonl");
        Assert.Equal(9_995, records.Count);
        Assert.Equal(new Dictionary<string, int> { ["train"] = 9_007, ["validation"] = 393, ["test"] = 595 }, BySplit(records));
        Assert.Equal(AustenCorpus.Books.Select(b => b.Title).Order(), records.Select(r => r.GetProperty("book").GetString()).Distinct().Order());
        var objectOf = AustenCorpus.Books.ToDictionary(b => b.Title, b => b.Object);
        foreach (var r in records)
        {
            AssertCleanText(r);
            string id = $"austen/{objectOf[r.GetProperty("book").GetString()!]}/{r.GetProperty("chapter").GetInt32()}";
            Assert.Equal(DataSplits.Assign(id), r.GetProperty("split").GetString());
        }
        Assert.Equal(270, records.Select(r => (r.GetProperty("book").GetString(), r.GetProperty("chapter").GetInt32())).Distinct().Count());
        Assert.StartsWith("It is a truth universally acknowledged", records.First(r => r.GetProperty("book").GetString() == "Pride & Prejudice").GetProperty("text").GetString());
    }

    [Fact]
    public void SotuPre1900_DemoSubset_OneSplitPerAddress()
    {
        var records = Load("sotu_pre1900.jsonl");
        Assert.Equal(3_178, records.Count);
        Assert.Equal(new Dictionary<string, int> { ["train"] = 2_680, ["validation"] = 321, ["test"] = 177 }, BySplit(records));
        var addresses = records.GroupBy(r => (r.GetProperty("year").GetInt32(), r.GetProperty("president").GetString())).ToList();
        Assert.Equal(52, addresses.Count);
        Assert.All(addresses, a => Assert.Single(a.Select(r => r.GetProperty("split").GetString()).Distinct()));
        Assert.Equal((6, 4), (addresses.Count(a => a.First().GetProperty("split").GetString() == "validation"),
            addresses.Count(a => a.First().GetProperty("split").GetString() == "test")));
        Assert.All(records, r =>
        {
            AssertCleanText(r);
            Assert.InRange(r.GetProperty("year").GetInt32(), 1790, 1899);
            Assert.InRange(r.GetProperty("text").GetString()!.Length, 1, SotuCorpus.ChunkChars);
            Assert.Contains(r.GetProperty("party").GetString(), SotuCorpus.Parties.Values);
        });
        Assert.StartsWith("Fellow-Citizens of the Senate and House of Representatives:", records[0].GetProperty("text").GetString());
    }

    [Fact]
    public void CommittedData_StaysUnderBudget()
    {
        long bytes = new[] { "austen.jsonl", "sotu_pre1900.jsonl" }.Sum(f => new FileInfo(RepoFiles.Path("data", f)).Length);
        Assert.InRange(bytes, 1, 8_000_000);
    }
}
