using System.Text;
using Peft.Training.Data.Corpora;

namespace Peft.Tests.Data;

public class RSerializationTests
{
    [Fact]
    public void CharacterVector_DecodesEachStringsEncodingAndNa()
    {
        var blob = RBlob.Header().Flags(16).Int(4)
            .CharSxp("EMMA", RBlob.Ascii)
            .CharSxp("café — “quoted”", RBlob.Utf8)
            .CharSxp(null)
            .CharSxp("naïve", RBlob.Latin1, Encoding.Latin1)
            .ToArray();
        var v = Assert.IsType<RStrings>(RXdrReader.Read(blob));
        Assert.Equal(["EMMA", "café — “quoted”", null, "naïve"], v.Values);
    }

    [Fact]
    public void NamedList_ResolvesSymbolBackReferences()
    {
        // list(a = 1:2, b = TRUE, inner = list(x = "y")): "names" is written once, then referenced as REFSXP 1.
        var blob = RBlob.Header(version: 2).Flags(19, attr: true).Int(3)
            .Flags(13).Int(2).Int(1).Int(2)
            .Flags(10).Int(1).Int(1)
            .Flags(19, attr: true).Int(1).Strings("y").NamesAttribute(0, "x")
            .NamesAttribute(1, "a", "b", "inner")
            .ToArray();
        var list = Assert.IsType<RList>(RXdrReader.Read(blob));
        Assert.Equal(["a", "b", "inner"], list.Names!);
        Assert.Equal([1, 2], Assert.IsType<RInts>(list["a"]).Values);
        Assert.True(Assert.IsType<RInts>(list["b"]).IsLogical);
        var inner = Assert.IsType<RList>(list["inner"]);
        Assert.Equal(["x"], inner.Names!);
        Assert.Equal(["y"], Assert.IsType<RStrings>(inner["x"]).Values);
        Assert.Null(list["missing"]);
    }

    [Fact]
    public void PairList_KeepsTagsInOrder()
    {
        var blob = RBlob.Header().Flags(2, tag: true).Symbol("first").Strings("1")
            .Flags(2, tag: true).Symbol("second").Nil()
            .Nil().ToArray();
        var p = Assert.IsType<RPairList>(RXdrReader.Read(blob));
        Assert.Equal(["first", "second"], p.Cells.Select(c => c.Tag));
        Assert.Null(p.Cells[1].Value);
    }

    [Fact]
    public void Reals_AreBigEndianDoubles()
    {
        var bytes = BitConverter.GetBytes(2.5);
        if (BitConverter.IsLittleEndian) Array.Reverse(bytes);
        var blob = RBlob.Header().Flags(14).Int(1).Bytes(bytes).ToArray();
        Assert.Equal([2.5], Assert.IsType<RReals>(RXdrReader.Read(blob)).Values);
    }

    [Theory]
    [InlineData("ascii")]
    [InlineData("truncated")]
    [InlineData("closure")]
    [InlineData("bad-ref")]
    public void MalformedOrUnsupported_IsInvalidData(string kind)
    {
        byte[] blob = kind switch
        {
            "ascii" => "A\n1\n"u8.ToArray(),
            "truncated" => RBlob.Header().Flags(16).Int(3).CharSxp("only one").ToArray(),
            "closure" => RBlob.Header().Flags(3).ToArray(),
            _ => RBlob.Header().Int((7 << 8) | 255).ToArray(),
        };
        Assert.Throws<PeftUserException>(() => RXdrReader.Read(blob));
    }

    [Fact]
    public void LazyLoadDb_ReadsObjectsByName()
    {
        var (rdx, rdb) = RBlob.LazyLoadDb(("emma", ["EMMA", "", "CHAPTER I"]), ("persuasion", ["Persuasion", null]));
        var db = RLazyLoadDb.FromBytes(rdx, rdb);
        Assert.Equal(["emma", "persuasion"], db.Names);
        Assert.Equal(["Persuasion", null], Assert.IsType<RStrings>(db.Read("persuasion")).Values);
        Assert.Equal(["EMMA", "", "CHAPTER I"], Assert.IsType<RStrings>(db.Read("emma")).Values);
        Assert.Throws<KeyNotFoundException>(() => db.Read("sanditon"));
    }

    [Fact]
    public void LazyLoadDb_CorruptRecord_IsInvalidData()
    {
        var (rdx, rdb) = RBlob.LazyLoadDb(("emma", ["EMMA"]));
        rdb[3] ^= 0x01;   // the stored uncompressed length no longer matches
        Assert.Throws<PeftUserException>(() => RLazyLoadDb.FromBytes(rdx, rdb).Read("emma"));
    }
}
