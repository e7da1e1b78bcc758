namespace Peft.Core.Data;

/// <summary>The layout of a data file's rows (see the engine's <c>DatasetBuilder</c> for the fields of each).</summary>
public enum DataFormat
{
    /// <summary>Decided from the first row's fields (or the extension for plain text).</summary>
    Auto,
    /// <summary><c>text</c>: causal-LM text, concatenated and packed into blocks of <c>BlockSize</c>.</summary>
    Text,
    /// <summary><c>instruction</c>, optional <c>input</c>, <c>output</c>: Alpaca-style prompt and response.</summary>
    Instruction,
    /// <summary><c>messages</c>: [{role, content}], rendered with the tokenizer's chat template family.</summary>
    Chat,
    /// <summary><c>source</c>/<c>target</c> (or <c>prompt</c>/<c>completion</c>).</summary>
    Seq2Seq,
    /// <summary><c>text</c> + <c>label</c> (an integer, or a string mapped to an id).</summary>
    Classification,
    /// <summary><c>tokens</c> (words) + <c>tags</c>/<c>ner_tags</c>/<c>labels</c> (one per word).</summary>
    TokenClassification,
    /// <summary><c>input_ids</c>, optional <c>attention_mask</c> and <c>labels</c>.</summary>
    Tokenized,
}

/// <summary>Format detection shared by the trainer and the catalog (which records a dataset's format on upload).</summary>
public static class DataFormats
{
    /// <summary>The format implied by a row's field names.</summary>
    public static DataFormat Detect(DataRecord row)
    {
        bool Has(string n) => RowFields.Has(row, n);
        if (Has("input_ids")) return DataFormat.Tokenized;
        if (Has("messages")) return DataFormat.Chat;
        if (Has("instruction")) return DataFormat.Instruction;
        if ((Has("source") && Has("target")) || (Has("prompt") && Has("completion"))) return DataFormat.Seq2Seq;
        if (Has("tokens") && (Has("tags") || Has("ner_tags") || Has("labels"))) return DataFormat.TokenClassification;
        if (Has("text") && Has("label")) return DataFormat.Classification;
        if (Has("text")) return DataFormat.Text;
        throw new DataFormatException($"{row.Location}: cannot tell the data format from fields [{string.Join(", ", row.Fields.Select(f => f.Key))}]; " +
            "expected text | instruction/input/output | messages | source/target | prompt/completion | text/label | tokens/tags | input_ids");
    }
}
