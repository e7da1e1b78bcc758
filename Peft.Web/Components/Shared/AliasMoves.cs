namespace Peft.Web.Components.Shared;

public enum AliasMoveDirection
{
    /// <summary>The alias does not exist yet.</summary>
    Create,
    /// <summary>To a newer version.</summary>
    Promote,
    /// <summary>To an older version.</summary>
    RollBack,
    /// <summary>Already there.</summary>
    None,
}

public static class AliasMoves
{
    public static AliasMoveDirection DirectionOf(int? current, int target) =>
        current is null ? AliasMoveDirection.Create
        : target > current ? AliasMoveDirection.Promote
        : target < current ? AliasMoveDirection.RollBack
        : AliasMoveDirection.None;
}
