using System.Text.Encodings.Web;
using System.Text.Json;
using Peft.Training.IO;

namespace Peft.Training.Tokenization;

/// <summary>
/// Saves a <see cref="BpeModel"/> as a Hugging Face tokenizer folder: tokenizer.json (GPT-2 layout: ByteLevel
/// pre-tokenizer with add_prefix_space=false, BPE model, ByteLevel decoder and post-processor, specials as added
/// tokens), tokenizer_config.json and special_tokens_map.json. The first special token is bos, eos and unk; the
/// second, if any, is pad. Output is byte-for-byte deterministic.
/// </summary>
public static class BpeTokenizerWriter
{
    private static readonly JsonWriterOptions Pretty = new()
    {
        Indented = true,
        // ByteLevel symbols ('Ġ', 'Ċ') stay literal, as the Python library writes them.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public const string TokenizerJson = "tokenizer.json", TokenizerConfig = "tokenizer_config.json",
        SpecialTokensMap = "special_tokens_map.json";

    /// <param name="modelMaxLength">tokenizer_config.json's model_max_length; null leaves it out ("no limit").</param>
    public static void Save(BpeModel model, string dir, int? modelMaxLength = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.SpecialTokens.Count == 0) throw new ArgumentException("The model needs at least one special token (eos).", nameof(model));
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllBytes(Path.Combine(dir, TokenizerJson), Json(w => WriteTokenizer(w, model)));
        AtomicFile.WriteAllBytes(Path.Combine(dir, TokenizerConfig), Json(w => WriteConfig(w, model, modelMaxLength)));
        AtomicFile.WriteAllBytes(Path.Combine(dir, SpecialTokensMap), Json(w =>
        {
            w.WriteStartObject();
            WriteRoles(w, model);
            w.WriteEndObject();
        }));
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, Pretty)) write(w);
        ms.WriteByte((byte)'\n');
        return ms.ToArray();
    }

    private static void WriteTokenizer(Utf8JsonWriter w, BpeModel model)
    {
        w.WriteStartObject();
        w.WriteString("version", "1.0");
        w.WriteNull("truncation");
        w.WriteNull("padding");
        w.WriteStartArray("added_tokens");
        for (int id = 0; id < model.SpecialTokens.Count; id++)
        {
            w.WriteStartObject();
            w.WriteNumber("id", id);
            w.WriteString("content", model.SpecialTokens[id]);
            w.WriteBoolean("single_word", false);
            w.WriteBoolean("lstrip", false);
            w.WriteBoolean("rstrip", false);
            w.WriteBoolean("normalized", false);
            w.WriteBoolean("special", true);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteNull("normalizer");
        WriteByteLevel(w, "pre_tokenizer", trimOffsets: true);
        WriteByteLevel(w, "post_processor", trimOffsets: false);
        WriteByteLevel(w, "decoder", trimOffsets: true);

        w.WriteStartObject("model");
        w.WriteString("type", "BPE");
        w.WriteNull("dropout");
        w.WriteNull("unk_token");   // every byte has a token, so nothing is ever unknown
        w.WriteNull("continuing_subword_prefix");
        w.WriteNull("end_of_word_suffix");
        w.WriteBoolean("fuse_unk", false);
        w.WriteBoolean("byte_fallback", false);
        w.WriteBoolean("ignore_merges", false);
        w.WriteStartObject("vocab");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int id = 0; id < model.Vocab.Count; id++)
            if (seen.Add(model.Vocab[id])) w.WriteNumber(model.Vocab[id], id);
        w.WriteEndObject();
        // "left right" strings (the classic form every tokenizers version reads); ByteLevel tokens never hold a space.
        w.WriteStartArray("merges");
        foreach (var (left, right) in model.Merges) w.WriteStringValue(left + " " + right);
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteByteLevel(Utf8JsonWriter w, string name, bool trimOffsets)
    {
        w.WriteStartObject(name);
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", false);
        w.WriteBoolean("trim_offsets", trimOffsets);
        w.WriteBoolean("use_regex", true);
        w.WriteEndObject();
    }

    private static void WriteConfig(Utf8JsonWriter w, BpeModel model, int? modelMaxLength)
    {
        w.WriteStartObject();
        w.WriteBoolean("add_bos_token", false);
        w.WriteBoolean("add_prefix_space", false);
        w.WriteStartObject("added_tokens_decoder");
        for (int id = 0; id < model.SpecialTokens.Count; id++)
        {
            w.WriteStartObject(id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            w.WriteString("content", model.SpecialTokens[id]);
            w.WriteBoolean("lstrip", false);
            w.WriteBoolean("normalized", false);
            w.WriteBoolean("rstrip", false);
            w.WriteBoolean("single_word", false);
            w.WriteBoolean("special", true);
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteBoolean("clean_up_tokenization_spaces", false);
        WriteRoles(w, model);
        if (modelMaxLength is { } n) w.WriteNumber("model_max_length", n);
        w.WriteString("tokenizer_class", "GPT2Tokenizer");
        w.WriteEndObject();
    }

    private static void WriteRoles(Utf8JsonWriter w, BpeModel model)
    {
        string eos = model.SpecialTokens[0];
        w.WriteString("bos_token", eos);
        w.WriteString("eos_token", eos);
        if (model.SpecialTokens.Count > 1) w.WriteString("pad_token", model.SpecialTokens[1]);
        w.WriteString("unk_token", eos);
    }
}
