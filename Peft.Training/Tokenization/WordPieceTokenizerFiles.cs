using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Training.IO;

namespace Peft.Training.Tokenization;

/// <summary>
/// Writes a BERT WordPiece vocabulary (<c>vocab.txt</c>, one token per line, id = line number) as the fast-tokenizer
/// files transformers would save: tokenizer.json (BertNormalizer, BertPreTokenizer, WordPiece with <c>##</c>
/// continuations, <c>[CLS] $A [SEP]</c> / <c>[CLS] $A [SEP] $B:1 [SEP]:1</c> templates, WordPiece decoder) and
/// tokenizer_config.json.
/// </summary>
public static class WordPieceTokenizerFiles
{
    private static readonly string[] Specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

    /// <summary>Tokens of a vocab.txt in id order (CRLF or LF line ends; a final empty line is not a token).</summary>
    public static List<string> ReadVocab(string text)
    {
        var lines = text.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        if (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        return lines;
    }

    public static void Write(string dir, IReadOnlyList<string> vocab, bool lowercase = true, int modelMaxLength = 512)
    {
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < vocab.Count; i++) ids.TryAdd(vocab[i], i);   // first occurrence wins, like a dict built line by line
        foreach (var s in Specials)
            if (!ids.ContainsKey(s)) throw new PeftUserException($"vocab has no {s} token; not a BERT WordPiece vocabulary", UserErrorKind.Invalid);
        Directory.CreateDirectory(dir);
        var options = new JsonSerializerOptions { WriteIndented = true };
        AtomicFile.WriteAllText(Path.Combine(dir, "tokenizer.json"), TokenizerJson(ids, lowercase).ToJsonString(options));
        var config = new JsonObject
        {
            ["clean_up_tokenization_spaces"] = true,
            ["cls_token"] = "[CLS]",
            ["do_lower_case"] = lowercase,
            ["mask_token"] = "[MASK]",
            ["model_max_length"] = modelMaxLength,
            ["pad_token"] = "[PAD]",
            ["sep_token"] = "[SEP]",
            ["strip_accents"] = null,
            ["tokenize_chinese_chars"] = true,
            ["tokenizer_class"] = "BertTokenizer",
            ["unk_token"] = "[UNK]",
        };
        AtomicFile.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString(options));
        AtomicFile.WriteAllText(Path.Combine(dir, "vocab.txt"), string.Concat(vocab.Select(t => t + "\n")));
    }

    private static JsonObject TokenizerJson(Dictionary<string, int> ids, bool lowercase)
    {
        JsonObject Special(string token, int typeId) => new() { ["SpecialToken"] = new JsonObject { ["id"] = token, ["type_id"] = typeId } };
        JsonObject Sequence(string id, int typeId) => new() { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = typeId } };
        var vocab = new JsonObject();
        foreach (var (token, id) in ids.OrderBy(kv => kv.Value)) vocab[token] = id;
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(Specials.OrderBy(s => ids[s]).Select(s => (JsonNode)new JsonObject
            {
                ["id"] = ids[s], ["content"] = s, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            }).ToArray()),
            ["normalizer"] = new JsonObject
            {
                ["type"] = "BertNormalizer", ["clean_text"] = true, ["handle_chinese_chars"] = true,
                ["strip_accents"] = null, ["lowercase"] = lowercase,
            },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "BertPreTokenizer" },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(Special("[CLS]", 0), Sequence("A", 0), Special("[SEP]", 0)),
                ["pair"] = new JsonArray(Special("[CLS]", 0), Sequence("A", 0), Special("[SEP]", 0), Sequence("B", 1), Special("[SEP]", 1)),
                ["special_tokens"] = new JsonObject
                {
                    ["[CLS]"] = new JsonObject { ["id"] = "[CLS]", ["ids"] = new JsonArray(ids["[CLS]"]), ["tokens"] = new JsonArray("[CLS]") },
                    ["[SEP]"] = new JsonObject { ["id"] = "[SEP]", ["ids"] = new JsonArray(ids["[SEP]"]), ["tokens"] = new JsonArray("[SEP]") },
                },
            },
            ["decoder"] = new JsonObject { ["type"] = "WordPiece", ["prefix"] = "##", ["cleanup"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "WordPiece", ["unk_token"] = "[UNK]", ["continuing_subword_prefix"] = "##",
                ["max_input_chars_per_word"] = 100, ["vocab"] = vocab,
            },
        };
    }
}
