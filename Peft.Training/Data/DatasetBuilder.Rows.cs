using Peft.Training.Models;
using Peft.Training.Tokenization;

namespace Peft.Training.Data;

public static partial class DatasetBuilder
{
    /// <summary>Alpaca's prompt (with and without an input), the de-facto standard for instruction data.</summary>
    public static string AlpacaPrompt(string instruction, string? input) => string.IsNullOrWhiteSpace(input)
        ? "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
          $"### Instruction:\n{instruction}\n\n### Response:\n"
        : "Below is an instruction that describes a task, paired with an input that provides further context. " +
          "Write a response that appropriately completes the request.\n\n" +
          $"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n";

    /// <summary>Per-build state: the tokenizer, options and the counters reported in <see cref="DatasetStats"/>.</summary>
    private sealed class Context(ITextTokenizer? tokenizer, DatasetOptions options)
    {
        private const long Ignore = -100;
        private readonly Lazy<bool> _addsBos = new(() =>
            tokenizer?.BosTokenId is int b && tokenizer.Encode("a", true) is { Count: > 0 } ids && ids[0] == b);

        public int Bad, NoLabels, Truncated;
        public List<string> Skipped { get; } = new();

        private ITextTokenizer Tok => tokenizer!;
        private bool CausalLm => options.Task == TaskType.CausalLM;

        private long[] Encode(string text, bool special) => Tok.Encode(text, special).Select(i => (long)i).ToArray();

        private long[] WithEos(long[] ids) => Tok.EosTokenId is int eos && (ids.Length == 0 || ids[^1] != eos) ? [.. ids, eos] : ids;

        public void AppendDocument(string text, List<long> packed)
        {
            if (string.IsNullOrWhiteSpace(text)) { NoLabels++; return; }
            packed.AddRange(WithEos(Encode(text, true)));
        }

        public Example? Row(DataRecord row, DataFormat format, LabelMapping? labels) => format switch
        {
            DataFormat.Instruction => PromptCompletion(
                AlpacaPrompt(RowFields.String(row, "instruction"), RowFields.OptionalString(row, "input")), RowFields.String(row, "output")),
            DataFormat.Seq2Seq => RowFields.Has(row, "source")
                ? PromptCompletion(RowFields.String(row, "source"), RowFields.String(row, "target"))
                : PromptCompletion(RowFields.String(row, "prompt"), RowFields.String(row, "completion")),
            DataFormat.Chat => Chat(RowFields.Messages(row)),
            DataFormat.Classification => Classification(row, labels!),
            DataFormat.TokenClassification => TokenClassification(row, labels!),
            DataFormat.Tokenized => Tokenized(row),
            _ => throw new InvalidOperationException($"unexpected format {format}"),
        };

        private Example? PromptCompletion(string prompt, string completion)
        {
            if (!CausalLm)
            {
                // Encoder-decoder: the prompt feeds the encoder, the completion is the decoder's labels.
                var src = Cut(Encode(prompt, true));
                var tgt = Cut(Encode(completion, true));
                return Keep(new Example(src, tgt));
            }
            return Segments([(Encode(prompt, true), false), (WithEos(Encode(completion, false)), true)]);
        }

        private Example? Chat(List<ChatMessage> messages)
        {
            var segs = ChatTemplates.Render(messages, Tok.ChatTemplate, Tok.BosToken, Tok.EosToken);
            var parts = new List<(long[], bool)>();
            var family = ChatTemplates.Detect(Tok.ChatTemplate);
            if (family is ChatTemplateFamily.ChatML or ChatTemplateFamily.Zephyr && _addsBos.Value) parts.Add(([Tok.BosTokenId!.Value], false));
            // Templates are applied with add_special_tokens=False (as apply_chat_template does): bos/eos come from the text.
            foreach (var s in segs) parts.Add((Encode(s.Text, false), s.Train));
            if (!CausalLm) throw new RowException("chat rows need a causal LM");
            return Segments(parts);
        }

        /// <summary>Concatenates pieces; labels are -100 on untrained pieces when training on completions only.</summary>
        private Example? Segments(IEnumerable<(long[] Ids, bool Train)> parts)
        {
            var ids = new List<long>();
            var labels = new List<long>();
            foreach (var (p, train) in parts)
            {
                ids.AddRange(p);
                labels.AddRange(train || !options.CompletionOnly ? p : Enumerable.Repeat(Ignore, p.Length));
            }
            return Keep(new Example(Cut(ids.ToArray()), Cut(labels.ToArray(), count: false)));
        }

        private Example? Classification(DataRecord row, LabelMapping map)
        {
            var ids = Cut(Encode(RowFields.String(row, "text"), true));
            long label = MapLabel(row.Fields["label"], "label", map);
            return ids.Length == 0 ? Drop() : new Example(ids, [label]);
        }

        private Example? TokenClassification(DataRecord row, LabelMapping map)
        {
            var words = (RowFields.Array(row, "tokens") ?? throw new RowException("field 'tokens' is missing")).Select((w, i) =>
                w is System.Text.Json.Nodes.JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new RowException($"tokens[{i}] must be a string")).ToList();
            string tagField = RowFields.FirstPresent(row, "tags", "ner_tags", "labels")!;
            var tags = RowFields.Array(row, tagField)!;
            if (tags.Count != words.Count) throw new RowException($"'{tagField}' has {tags.Count} entries but 'tokens' has {words.Count}");
            // Word boundaries from prefix encodings (the native tokenizer has no offsets); the first sub-token of each
            // word carries its tag, the others -100 (transformers' token-classification recipe).
            var ids = Encode(string.Join(' ', words), false);
            var labels = Enumerable.Repeat(Ignore, ids.Length).ToArray();
            int prev = 0;
            for (int i = 0; i < words.Count; i++)
            {
                int end = i == words.Count - 1 ? ids.Length : Encode(string.Join(' ', words.Take(i + 1)), false).Length;
                if (end > prev && prev < labels.Length) labels[prev] = MapLabel(tags[i], $"{tagField}[{i}]", map);
                prev = Math.Max(prev, end);
            }
            if (_addsBos.Value) { ids = [Tok.BosTokenId!.Value, .. ids]; labels = [Ignore, .. labels]; }
            return Keep(new Example(Cut(ids), Cut(labels, count: false)));
        }

        private Example? Tokenized(DataRecord row)
        {
            var ids = RowFields.IntList(row, "input_ids");
            if (ids.Length == 0) return Drop();
            long[]? mask = RowFields.Has(row, "attention_mask") ? RowFields.IntList(row, "attention_mask") : null;
            if (mask is not null && mask.Length != ids.Length)
                throw new RowException($"'attention_mask' has {mask.Length} entries but 'input_ids' has {ids.Length}");
            long[] labels;
            if (!RowFields.Has(row, "labels"))
            {
                if (!CausalLm) throw new RowException("field 'labels' is missing");
                labels = ids.Select((id, i) => mask is null || mask[i] != 0 ? id : Ignore).ToArray();
            }
            else if (row.Fields["labels"] is System.Text.Json.Nodes.JsonArray || row.Fields["labels"]!.ToString().Trim().StartsWith('['))
            {
                labels = RowFields.IntList(row, "labels");
                if (options.Task != TaskType.Seq2SeqLM && labels.Length != ids.Length)
                    throw new RowException($"'labels' has {labels.Length} entries but 'input_ids' has {ids.Length}");
            }
            else
            {
                labels = [RowFields.Int(row.Fields["labels"]) ?? throw new RowException("field 'labels' must be a list or an integer")];
            }
            bool perToken = options.Task != TaskType.SequenceClassification;
            return Keep(new Example(Cut(ids), perToken ? Cut(labels, count: false) : labels, mask is null ? null : Cut(mask, count: false)));
        }

        private long MapLabel(System.Text.Json.Nodes.JsonNode? v, string field, LabelMapping map)
        {
            var (id, name) = RowFields.Label(v, field);
            if (id is long l) return l;
            if (map.Ids is not null && map.Ids.TryGetValue(name!, out var mapped)) return mapped;
            throw new RowException($"{field} '{name}' is not one of the labels [{string.Join(", ", map.Names ?? [])}]");
        }

        private long[] Cut(long[] ids, bool count = true)
        {
            if (ids.Length <= options.MaxLength) return ids;
            if (count) Truncated++;
            return ids[..options.MaxLength];
        }

        private Example? Keep(Example e) => e.LossItems(options.Task) == 0 ? Drop() : e;

        private Example? Drop()
        {
            NoLabels++;
            return null;
        }
    }
}
