namespace Peft.Web.Serving;

/// <summary>The inference server's settings, bound from the <c>Serving:</c> configuration section.</summary>
public sealed class ServingOptions
{
    public const string Section = "Serving";

    /// <summary>Base model folder; a relative path is looked up from the content root and its parents.</summary>
    public string ModelPath { get; set; } = "models/peft-demo";
    /// <summary>The name clients put in <c>model</c> for the base alone (default: the folder's name).</summary>
    public string? ModelName { get; set; }
    /// <summary>Folder adapter source: <c>NAME/N/</c> versions, <c>NAME/aliases.json</c>.</summary>
    public string AdaptersPath { get; set; } = "adapters";
    /// <summary>Resolve adapter names through the hub's catalog first (the folder serves names the catalog lacks).</summary>
    public bool UseCatalog { get; set; } = true;
    /// <summary>
    /// Encoder bases served next to the generation model (<see cref="ModelPath"/>) for <c>/v1/classify</c> and
    /// <c>/v1/embeddings</c>, e.g. <c>[{ "Name": "minilm", "Path": "models/minilm" }]</c>. Each gets its own engine.
    /// </summary>
    public List<ServedModelOptions> Encoders { get; set; } = [];
    /// <summary>Serve inference without credentials (as vLLM without <c>--api-key</c>); off: the <c>infer</c> scope is required.</summary>
    public bool AllowAnonymous { get; set; }
    public int MaxBatchSize { get; set; } = 32;
    public int MaxQueue { get; set; } = 256;
    public int MaxTokensLimit { get; set; } = 1024;
    public int DefaultMaxTokens { get; set; } = 16;
    public int MaxN { get; set; } = 8;
    public long DeviceBudgetMb { get; set; } = 256;
    public long HostBudgetMb { get; set; } = 1024;
    /// <summary>A request still generating after this long is cancelled and answered 504.</summary>
    public int RequestTimeoutSeconds { get; set; } = 120;
}

/// <summary>One served base: the name clients use in <c>model</c> (default: the folder's name) and its folder.</summary>
public sealed class ServedModelOptions
{
    public string? Name { get; set; }
    public string Path { get; set; } = "";
}
