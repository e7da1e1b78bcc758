using System.Text.RegularExpressions;
using Peft.Core;

namespace Peft.Storage.Services;

/// <summary>Names of base models, datasets, adapters and aliases: URL-safe, so they appear in routes unescaped.</summary>
public static partial class CatalogNames
{
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex Valid();

    public static string Check(string? name, string what)
    {
        if (string.IsNullOrWhiteSpace(name))
            throw new PeftUserException($"{what} name is missing", UserErrorKind.BadRequest);
        if (name.Length > Limits.NameLength)
            throw new PeftUserException($"{what} name '{name[..20]}…' is longer than {Limits.NameLength} characters", UserErrorKind.BadRequest);
        if (!Valid().IsMatch(name) || name.Contains(".."))
            throw new PeftUserException($"{what} name '{name}' may only hold letters, digits, '.', '_' and '-' and must start with a letter or digit", UserErrorKind.BadRequest);
        return name;
    }
}
