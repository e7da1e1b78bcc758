namespace Peft.Core;

/// <summary>What a user error is about; hosts map it (CLI: exit 2; HTTP: 400/404/409/422/413).</summary>
public enum UserErrorKind
{
    /// <summary>Malformed request or arguments (HTTP 400).</summary>
    BadRequest,
    /// <summary>Well-formed but invalid content: a bad file, config, data row or an unsupported combination (HTTP 422).</summary>
    Invalid,
    /// <summary>A named file, model, adapter or dataset does not exist (HTTP 404).</summary>
    NotFound,
    /// <summary>The request conflicts with the current state, e.g. an adapter for another base model (HTTP 409).</summary>
    Conflict,
    /// <summary>Input larger than allowed (HTTP 413).</summary>
    TooLarge,
}

/// <summary>
/// Base of every error the user can act on (bad file, bad config, bad data row, unsupported combination). Every host
/// maps it the same way; any other exception is a bug (CLI exit 1, HTTP 500) and is never reclassified by its type.
/// The message names the file, key or field and says what is wrong, in one line.
/// </summary>
public class PeftUserException(string message, UserErrorKind kind = UserErrorKind.Invalid, Exception? inner = null)
    : Exception(message, inner)
{
    public UserErrorKind Kind { get; } = kind;
}
