using System.Text.Encodings.Web;
using System.Text.Json;

namespace Peft.Training.Tokenization;

/// <summary>One entry of tokenizer.json "added_tokens".</summary>
internal sealed record AddedTokenInfo(int Id, string Content, bool Special);

/// <summary>
/// The parts of tokenizer.json the managed side needs (vocabulary lookups, added tokens), plus rewriting the file
/// into the variants the native engine is loaded from.
/// </summary>
internal sealed class TokenizerJson
{
    public required string ModelType { get; init; }
    public required Dictionary<string, int> TokenToId { get; init; }
    public required Dictionary<int, string> IdToToken { get; init; }
    public required List<AddedTokenInfo> AddedTokens { get; init; }

    public static TokenizerJson Read(JsonDocument doc, string path)
    {
        try
        {
            return ReadUnchecked(doc, path);
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException or IndexOutOfRangeException)
        {
            // JsonElement accessors throw these on a wrong shape (e.g. a string id); name the file instead.
            throw new PeftUserException($"Unexpected structure in '{path}': {e.Message}", UserErrorKind.Invalid, e);
        }
    }

    private static TokenizerJson ReadUnchecked(JsonDocument doc, string path)
    {
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new PeftUserException($"'{path}' is not a tokenizer.json: no \"model\" object.", UserErrorKind.Invalid);
        string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "BPE";

        var tokenToId = new Dictionary<string, int>(StringComparer.Ordinal);
        var idToToken = new Dictionary<int, string>();
        if (model.TryGetProperty("vocab", out var vocab))
        {
            if (vocab.ValueKind == JsonValueKind.Object)          // BPE, WordPiece, WordLevel: {"token": id}
                foreach (var p in vocab.EnumerateObject())
                {
                    int id = p.Value.GetInt32();
                    tokenToId[p.Name] = id;
                    idToToken.TryAdd(id, p.Name);
                }
            else if (vocab.ValueKind == JsonValueKind.Array)      // Unigram: [["piece", score], ...], id = index
            {
                int id = 0;
                foreach (var e in vocab.EnumerateArray())
                {
                    string piece = e[0].GetString() ?? "";
                    tokenToId.TryAdd(piece, id);
                    idToToken[id++] = piece;
                }
            }
        }

        // Added tokens take precedence in both directions, as in the Rust AddedVocabulary.
        var added = new List<AddedTokenInfo>();
        if (root.TryGetProperty("added_tokens", out var at) && at.ValueKind == JsonValueKind.Array)
            foreach (var e in at.EnumerateArray())
            {
                var info = new AddedTokenInfo(e.GetProperty("id").GetInt32(), e.GetProperty("content").GetString() ?? "",
                    e.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True);
                added.Add(info);
                tokenToId[info.Content] = info.Id;
                idToToken[info.Id] = info.Content;
            }
        return new TokenizerJson { ModelType = type, TokenToId = tokenToId, IdToToken = idToToken, AddedTokens = added };
    }

    /// <summary>
    /// Copies tokenizer.json for the native engine. Truncation and padding are always dropped (transformers disables
    /// the file's own settings and this class pads itself). <paramref name="postProcessor"/> replaces the
    /// post-processor (writing JSON null when it writes nothing); null keeps it. <paramref name="unmarkSpecial"/> turns
    /// every added token non-special, because the native Decode always skips special tokens and skipping is done here.
    /// </summary>
    public static byte[] Rewrite(JsonDocument doc, Action<Utf8JsonWriter>? postProcessor, bool unmarkSpecial)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            bool sawPostProcessor = false;
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                sawPostProcessor |= p.Name == "post_processor";
                w.WritePropertyName(p.Name);
                switch (p.Name)
                {
                    case "truncation" or "padding":
                        w.WriteNullValue();
                        break;
                    case "post_processor" when postProcessor is not null:
                        WriteOrNull(w, postProcessor);
                        break;
                    case "added_tokens" when unmarkSpecial && p.Value.ValueKind == JsonValueKind.Array:
                        w.WriteStartArray();
                        foreach (var tok in p.Value.EnumerateArray())
                        {
                            w.WriteStartObject();
                            foreach (var f in tok.EnumerateObject())
                                if (f.Name == "special") w.WriteBoolean("special", false);
                                else f.WriteTo(w);
                            w.WriteEndObject();
                        }
                        w.WriteEndArray();
                        break;
                    default:
                        p.Value.WriteTo(w);
                        break;
                }
            }
            if (!sawPostProcessor && postProcessor is not null)
            {
                w.WritePropertyName("post_processor");
                WriteOrNull(w, postProcessor);
            }
            w.WriteEndObject();
        }
        return ms.ToArray();
    }

    private static void WriteOrNull(Utf8JsonWriter w, Action<Utf8JsonWriter> write)
    {
        long before = w.BytesPending + w.BytesCommitted;
        write(w);
        if (w.BytesPending + w.BytesCommitted == before) w.WriteNullValue();
    }

    /// <summary>
    /// The TemplateProcessing LlamaTokenizerFast.update_post_processor builds: "[bos] $A [eos]" and
    /// "[bos] $A [eos] [bos] $B [eos]" with type id 1 on the second sequence.
    /// </summary>
    public static Action<Utf8JsonWriter> LlamaTemplate((string Token, int Id)? bos, (string Token, int Id)? eos) => w =>
    {
        if (bos is null && eos is null) return;   // nothing to add: the caller writes null
        w.WriteStartObject();
        w.WriteString("type", "TemplateProcessing");
        w.WriteStartArray("single");
        Piece(w, bos, eos, "A", 0);
        w.WriteEndArray();
        w.WriteStartArray("pair");
        Piece(w, bos, eos, "A", 0);
        Piece(w, bos, eos, "B", 1);
        w.WriteEndArray();
        w.WriteStartObject("special_tokens");
        foreach (var s in new[] { bos, eos }.OfType<(string Token, int Id)>().DistinctBy(s => s.Token))
        {
            w.WriteStartObject(s.Token);
            w.WriteString("id", s.Token);
            w.WriteStartArray("ids");
            w.WriteNumberValue(s.Id);
            w.WriteEndArray();
            w.WriteStartArray("tokens");
            w.WriteStringValue(s.Token);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteEndObject();
    };

    private static void Piece(Utf8JsonWriter w, (string Token, int Id)? bos, (string Token, int Id)? eos, string seq, int typeId)
    {
        if (bos is { } b) Special(w, b.Token, typeId);
        w.WriteStartObject();
        w.WriteStartObject("Sequence");
        w.WriteString("id", seq);
        w.WriteNumber("type_id", typeId);
        w.WriteEndObject();
        w.WriteEndObject();
        if (eos is { } e) Special(w, e.Token, typeId);
    }

    private static void Special(Utf8JsonWriter w, string token, int typeId)
    {
        w.WriteStartObject();
        w.WriteStartObject("SpecialToken");
        w.WriteString("id", token);
        w.WriteNumber("type_id", typeId);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>An Action that writes nothing, i.e. "post_processor": null.</summary>
    public static readonly Action<Utf8JsonWriter> NoPostProcessor = _ => { };
}
