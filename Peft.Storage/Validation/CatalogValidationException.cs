using Peft.Core;

namespace Peft.Storage.Validation;

/// <summary>An upload or registration refused for one or more reasons; hosts show every one of them.</summary>
public sealed class CatalogValidationException(string title, IReadOnlyList<string> problems, UserErrorKind kind = UserErrorKind.Invalid)
    : PeftUserException(problems.Count == 1 ? $"{title}: {problems[0]}" : $"{title}: {problems.Count} problems: {string.Join("; ", problems)}", kind)
{
    public string Title { get; } = title;
    public IReadOnlyList<string> Problems { get; } = problems;
}
