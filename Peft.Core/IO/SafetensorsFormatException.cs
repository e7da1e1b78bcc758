using Peft.Core;
namespace Peft.Core.IO;

/// <summary>
/// A safetensors file (or a sharded checkpoint index) is malformed. The message always names the file and the
/// specific problem, because these errors usually surface far from where the path was chosen.
/// </summary>
public sealed class SafetensorsFormatException : PeftUserException
{
    public SafetensorsFormatException(string path, string reason, Exception? inner = null)
        : base($"Invalid safetensors file '{path}': {reason}", UserErrorKind.Invalid, inner)
    {
        FilePath = path;
        Reason = reason;
    }

    /// <summary>The offending file (a .safetensors file or a .index.json).</summary>
    public string FilePath { get; }

    /// <summary>The problem, without the path.</summary>
    public string Reason { get; }
}
