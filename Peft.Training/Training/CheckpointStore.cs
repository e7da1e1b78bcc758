using System.Globalization;
using Peft.Training.IO;

namespace Peft.Training.Training;

/// <summary>
/// Checkpoint folders <c>checkpoint-{step}</c> under an output folder, written atomically: everything goes into a
/// hidden temp folder (manifest last, every file flushed to disk), which is then renamed into place. A crash leaves
/// at most a temp folder, which resume ignores and the next run deletes.
/// </summary>
public static class CheckpointStore
{
    public const string Prefix = "checkpoint-";
    public const string StateFileName = "trainer_state.json";
    private const string TempPrefix = ".tmp-checkpoint-";
    private const string OldPrefix = ".old-checkpoint-";

    /// <summary>
    /// Writes checkpoint <paramref name="step"/>: <paramref name="writeFiles"/> fills the folder, then the state (with a
    /// manifest of those files) is added and the folder is renamed to its final name, replacing an older one.
    /// </summary>
    public static string Write(string outputDir, int step, TrainerState state, Action<string> writeFiles)
    {
        Directory.CreateDirectory(outputDir);
        string final = Path.Combine(outputDir, Prefix + step.ToString(CultureInfo.InvariantCulture));
        string temp = Path.Combine(outputDir, $"{TempPrefix}{step}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            writeFiles(temp);
            var manifest = new Dictionary<string, long>();
            foreach (var f in Directory.GetFiles(temp).Order(StringComparer.Ordinal))
            {
                using (var fs = new FileStream(f, FileMode.Open, FileAccess.ReadWrite)) fs.Flush(true);
                manifest[Path.GetFileName(f)] = new FileInfo(f).Length;
            }
            var withManifest = state.Clone();
            withManifest.Files = manifest;
            AtomicFile.WriteAllText(Path.Combine(temp, StateFileName), withManifest.ToJson());
            string? old = null;
            if (Directory.Exists(final))
            {
                old = Path.Combine(outputDir, $"{OldPrefix}{step}-{Guid.NewGuid():N}");
                Directory.Move(final, old);
            }
            Directory.Move(temp, final);
            if (old is not null) Directory.Delete(old, true);
            return final;
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, true);
            throw;
        }
    }

    /// <summary>Null when <paramref name="dir"/> is a complete checkpoint, else why not.</summary>
    public static string? Incomplete(string dir)
    {
        string stateFile = Path.Combine(dir, StateFileName);
        if (!File.Exists(stateFile)) return $"{dir}: no {StateFileName} (the checkpoint was not finished)";
        TrainerState state;
        try { state = TrainerState.Parse(File.ReadAllText(stateFile), stateFile); }
        catch (PeftUserException e) { return e.Message; }
        if (state.Files.Count == 0) return $"{stateFile}: no file manifest";
        foreach (var (name, size) in state.Files)
        {
            var f = new FileInfo(Path.Combine(dir, name));
            if (!f.Exists) return $"{dir}: {name} is missing";
            if (f.Length != size) return $"{dir}: {name} has {f.Length} bytes, the manifest says {size}";
        }
        return null;
    }

    /// <summary>Complete checkpoints under <paramref name="outputDir"/>, newest (highest step) first.</summary>
    public static IEnumerable<(int Step, string Path)> List(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return [];
        return Directory.GetDirectories(outputDir, Prefix + "*")
            .Select(d => (Ok: int.TryParse(Path.GetFileName(d)[Prefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out int s), Step: s, Path: d))
            .Where(x => x.Ok && Incomplete(x.Path) is null)
            .OrderByDescending(x => x.Step)
            .Select(x => (x.Step, x.Path));
    }

    /// <summary>
    /// The checkpoint to resume from: <paramref name="path"/> itself when it is a checkpoint folder (an incomplete one
    /// is an error), otherwise the newest complete checkpoint inside it; null when it holds none.
    /// </summary>
    public static string? Resolve(string path)
    {
        if (!Directory.Exists(path)) throw new PeftUserException($"{path}: resume folder not found", UserErrorKind.NotFound);
        if (Path.GetFileName(Path.TrimEndingDirectorySeparator(path)).StartsWith(Prefix, StringComparison.Ordinal) || File.Exists(Path.Combine(path, StateFileName)))
        {
            if (Incomplete(path) is { } why) throw new PeftUserException($"cannot resume: {why}", UserErrorKind.Invalid);
            return path;
        }
        return List(path).Select(c => c.Path).FirstOrDefault();
    }

    /// <summary>Deletes leftovers of interrupted writes (temp and replaced folders).</summary>
    public static void CleanUp(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return;
        foreach (var d in Directory.GetDirectories(outputDir))
        {
            string name = Path.GetFileName(d);
            if (name.StartsWith(TempPrefix, StringComparison.Ordinal) || name.StartsWith(OldPrefix, StringComparison.Ordinal))
            {
                try { Directory.Delete(d, true); }
                catch (IOException) { }
            }
        }
    }

    /// <summary>Keeps the <paramref name="keep"/> newest complete checkpoints.</summary>
    public static void Prune(string outputDir, int keep)
    {
        foreach (var (_, path) in List(outputDir).Skip(keep)) Directory.Delete(path, true);
    }
}
