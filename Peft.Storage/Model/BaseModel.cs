namespace Peft.Storage.Model;

/// <summary>A base model folder (config.json + safetensors weights) that adapters are trained on and checked against.</summary>
public sealed class BaseModel
{
    public int Id { get; set; }
    /// <summary>Catalog name (e.g. <c>peft-demo</c>), unique; what <c>base_model_name_or_path</c> resolves to.</summary>
    public required string Name { get; set; }
    /// <summary>Absolute folder holding config.json and the weights.</summary>
    public required string Folder { get; set; }
    /// <summary>First of <c>architectures</c> in config.json (e.g. LlamaForCausalLM), or the model_type.</summary>
    public required string Architecture { get; set; }
    public required string ModelType { get; set; }
    /// <summary>Elements of every tensor in the weights, counted from the safetensors headers.</summary>
    public long ParameterCount { get; set; }
    /// <summary>safetensors dtype holding most parameters (F32, BF16 ...).</summary>
    public required string DType { get; set; }
    /// <summary>sha256 over the sha256 of config.json and each weights file (name-ordered).</summary>
    public required string ContentSha256 { get; set; }
    public string? Description { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public string? CreatedBy { get; set; }
}
