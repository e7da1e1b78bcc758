using System.Text.Json.Nodes;

namespace Peft.Tests.Support;

/// <summary>
/// A WordLevel tokenizer.json over exactly a tiny golden model's ids: the given special tokens, then "w{id}" for every
/// other id, split on whitespace; no decoder, so decoding joins tokens with spaces.
/// </summary>
internal static class WordLevelTokenizer
{
    /// <param name="appendEos">Special token appended to every encoding (T5's tokenizer appends &lt;/s&gt;), or null.</param>
    public static void Write(string modelDir, int vocabSize, IReadOnlyList<string> specials, string? appendEos = null)
    {
        var vocab = new JsonObject();
        var added = new JsonArray();
        for (int id = 0; id < specials.Count; id++)
        {
            vocab[specials[id]] = id;
            added.Add(new JsonObject
            {
                ["id"] = id, ["content"] = specials[id], ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            });
        }
        for (int i = specials.Count; i < vocabSize; i++) vocab[$"w{i}"] = i;
        JsonNode? post = null;
        if (appendEos is not null)
        {
            JsonObject Seq() => new() { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } };
            JsonObject Eos() => new() { ["SpecialToken"] = new JsonObject { ["id"] = appendEos, ["type_id"] = 0 } };
            post = new JsonObject
            {
                ["type"] = "TemplateProcessing", ["single"] = new JsonArray(Seq(), Eos()), ["pair"] = new JsonArray(Seq(), Eos()),
                ["special_tokens"] = new JsonObject
                {
                    [appendEos] = new JsonObject { ["id"] = appendEos, ["ids"] = new JsonArray(specials.ToList().IndexOf(appendEos)), ["tokens"] = new JsonArray(appendEos) },
                },
            };
        }
        var json = new JsonObject
        {
            ["version"] = "1.0", ["truncation"] = null, ["padding"] = null, ["added_tokens"] = added, ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "WhitespaceSplit" }, ["post_processor"] = post, ["decoder"] = null,
            ["model"] = new JsonObject { ["type"] = "WordLevel", ["vocab"] = vocab, ["unk_token"] = "<unk>" },
        };
        File.WriteAllText(Path.Combine(modelDir, "tokenizer.json"), json.ToJsonString());
    }
}
