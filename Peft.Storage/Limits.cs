namespace Peft.Storage;

/// <summary>Column sizes shared by the mapping and the validation of names.</summary>
public static class Limits
{
    public const int NameLength = 100;
}
