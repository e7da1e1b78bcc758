namespace Peft.Storage.Model;

/// <summary>A named adapter line: its numbered, immutable versions and the aliases pointing at them.</summary>
public sealed class Adapter
{
    public int Id { get; set; }
    public required string Name { get; set; }
    public int BaseModelId { get; set; }
    public BaseModel BaseModel { get; set; } = null!;
    /// <summary>PEFT task type (CAUSAL_LM, SEQ_CLS ...), from the first version.</summary>
    public required string TaskType { get; set; }
    /// <summary>PEFT method (LORA, IA3 ...), from the first version.</summary>
    public required string Method { get; set; }
    public string? Description { get; set; }
    public List<string> Tags { get; set; } = [];
    /// <summary>Highest version number handed out; bumped in the registering transaction (its write lock keeps numbers gapless).</summary>
    public int LastVersion { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public string? CreatedBy { get; set; }
    public List<AdapterVersion> Versions { get; set; } = [];
    public List<AdapterAlias> Aliases { get; set; } = [];
}
