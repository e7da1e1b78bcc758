namespace Peft.Storage.Model;

/// <summary>A training/evaluation data file: uploaded ones live in the blob store, bundled ones stay where they are.</summary>
public sealed class Dataset
{
    public int Id { get; set; }
    public required string Name { get; set; }
    /// <summary>Original file name (its extension picks the reader: .jsonl, .json, .csv, .tsv, else plain text).</summary>
    public required string FileName { get; set; }
    /// <summary>Detected row layout (text, instruction, chat, seq2seq, classification ...).</summary>
    public required string Format { get; set; }
    public int RowCount { get; set; }
    public long SizeBytes { get; set; }
    /// <summary>Content hash; the blob key when <see cref="SourcePath"/> is null.</summary>
    public required string Sha256 { get; set; }
    /// <summary>A file outside the blob store (bundled corpora); null for uploads.</summary>
    public string? SourcePath { get; set; }
    /// <summary>JSON array of the first rows (as read), for the UI.</summary>
    public required string PreviewJson { get; set; }
    public string? Description { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public string? CreatedBy { get; set; }
}
