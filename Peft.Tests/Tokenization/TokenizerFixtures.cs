using Peft.Tests.Support;
using Peft.Training.Tokenization;

namespace Peft.Tests.Tokenization;

/// <summary>Fixture folders (see tools/tokenizer-fixtures/gen_fixtures.py) and scratch model folders.</summary>
internal static class TokenizerFixtures
{
    public static string Dir(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", name);

    public static HfTokenizer Load(string name) => (HfTokenizer)AutoTokenizer.FromFolder(Dir(name));

    /// <summary>A temp folder with copies of a fixture's files, overridden/extended by <paramref name="files"/>.</summary>
    public static TempDir CopyWith(string? fixture, params (string Name, string? Content)[] files)
    {
        var dir = new TempDir();
        if (fixture is not null)
            foreach (var f in Directory.GetFiles(Dir(fixture)))
                File.Copy(f, Path.Combine(dir.Path, System.IO.Path.GetFileName(f)));
        foreach (var (name, content) in files)
        {
            string p = Path.Combine(dir.Path, name);
            if (content is null) File.Delete(p);
            else File.WriteAllText(p, content);
        }
        return dir;
    }
}

