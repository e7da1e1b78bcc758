namespace Peft.Cli.Support;

/// <summary>The CLI's default model roots: <c>PEFT_MODEL_ROOT</c> (path-separator list). The library never reads it.</summary>
internal static class ModelRoots
{
    public const string EnvironmentVariable = "PEFT_MODEL_ROOT";

    public static IReadOnlyList<string> FromEnvironment() =>
        Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } env
            ? env.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            : [];
}
