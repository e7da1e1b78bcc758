namespace Peft.Cli.Support;

/// <summary>An <c>--adapter [NAME=]DIR</c> value: the adapter is named after its folder unless NAME= is given.</summary>
public sealed record AdapterSpec(string Name, string Dir)
{
    public string ConfigPath => Path.Combine(Dir, Peft.Training.Tuners.PeftModel.ConfigFileName);

    public static AdapterSpec Parse(string value)
    {
        int eq = value.IndexOf('=');
        // Folder names may contain '=': an existing folder wins over the NAME= reading.
        var spec = eq > 0 && !Directory.Exists(value)
            ? new AdapterSpec(value[..eq], value[(eq + 1)..])
            : new AdapterSpec(Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(value))), value);
        if (!Directory.Exists(spec.Dir)) throw new PeftUserException($"{spec.Dir}: adapter folder not found", UserErrorKind.NotFound);
        return spec;
    }

    public static IReadOnlyList<AdapterSpec> ParseAll(IEnumerable<string>? values)
    {
        var specs = (values ?? []).Select(Parse).ToList();
        var dup = specs.GroupBy(s => s.Name).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null)
            throw new UsageException($"--adapter: two adapters are named '{dup.Key}'; name them with NAME=DIR");
        return specs;
    }

    /// <summary>
    /// <c>--adapter-names</c>: one loaded adapter (or <c>__base__</c>) per batch row. The row count is checked by the
    /// caller once the input is read.
    /// </summary>
    public static void CheckRowNames(string[]? rowNames, IReadOnlyList<AdapterSpec> adapters)
    {
        if (rowNames is null) return;
        if (adapters.Count == 0) throw new UsageException("--adapter-names needs at least one --adapter");
        var known = adapters.Select(a => a.Name).ToHashSet();
        foreach (var n in rowNames)
            if (n != Peft.Training.Tuners.Lora.LoraLayer.BaseRowName && !known.Contains(n))
                throw new UsageException($"--adapter-names: unknown adapter '{n}' (loaded: {string.Join(", ", known)}; __base__ = no adapter)");
    }
}
