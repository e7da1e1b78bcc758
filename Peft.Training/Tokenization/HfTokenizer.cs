using System.Text.Json;
using Native = Tokenizers.DotNet;

namespace Peft.Training.Tokenization;

/// <summary>
/// A tokenizer.json tokenizer run by the Rust HF tokenizers library (via Tokenizers.DotNet), with the transformers
/// behaviour around it done here: special-token roles, add_special_tokens, skip_special_tokens, truncation, padding.
/// </summary>
/// <remarks>
/// The native wrapper can only encode with the post-processor and only decode skipping special tokens, so two native
/// instances are loaded: <c>_withSpecials</c> (the file as transformers would configure it) and <c>_plain</c> (no
/// post-processor, no token flagged special). Encoding without special tokens and all decoding go through
/// <c>_plain</c>; skip_special_tokens is a managed filter on ids.
/// </remarks>
public sealed class HfTokenizer : ITextTokenizer
{
    private readonly Native.Tokenizer _withSpecials;
    private readonly Native.Tokenizer _plain;
    private readonly TokenizerJson _json;
    private readonly HashSet<int> _specialIds;
    private readonly Dictionary<string, string> _roles;
    private bool _disposed;

    /// <summary>Path of the tokenizer.json this instance was loaded from.</summary>
    public string SourcePath { get; }
    /// <summary>tokenizer.json model type: BPE, WordPiece, Unigram or WordLevel.</summary>
    public string ModelType => _json.ModelType;
    /// <summary>tokenizer_config.json model_max_length, null when absent or the "no limit" sentinel.</summary>
    public int? ModelMaxLength { get; }
    /// <summary>transformers' clean_up_tokenization_spaces (default false, as in recent transformers).</summary>
    public bool CleanUpTokenizationSpaces { get; set; }
    public PaddingSide PaddingSide { get; set; }
    public string? ChatTemplate { get; }
    /// <summary>Ids that <c>Decode(skipSpecialTokens: true)</c> drops.</summary>
    public IReadOnlySet<int> SpecialIds => _specialIds;
    /// <summary>Special-token roles present ("bos_token" → "&lt;s&gt;", ...).</summary>
    public IReadOnlyDictionary<string, string> SpecialTokens => _roles;

    internal HfTokenizer(string jsonPath, TokenizerSettings settings)
    {
        SourcePath = jsonPath;
        using var doc = TokenizerSettings.ParseJsonFile(jsonPath);
        _json = TokenizerJson.Read(doc, jsonPath);
        settings.ApplyClassDefaults(t => _json.TokenToId.ContainsKey(t));
        _roles = new Dictionary<string, string>(settings.SpecialTokens);
        PaddingSide = settings.PaddingSide;
        ChatTemplate = settings.ChatTemplate;
        CleanUpTokenizationSpaces = settings.CleanUpTokenizationSpaces;
        ModelMaxLength = settings.ModelMaxLength;

        // transformers registers every configured special token as special in the backend.
        _specialIds = _json.AddedTokens.Where(t => t.Special).Select(t => t.Id).ToHashSet();
        foreach (var t in _roles.Values.Concat(settings.AdditionalSpecialTokens))
            if (TokenToId(t) is { } id) _specialIds.Add(id);
        _specialIds.UnionWith(settings.ExtraSpecialIds);

        Action<Utf8JsonWriter>? postProcessor = null;
        if (settings.RebuildsPostProcessor)
        {
            (string, int)? Slot(bool add, string? tok) => add && tok is not null && TokenToId(tok) is { } id ? (tok, id) : null;
            postProcessor = TokenizerJson.LlamaTemplate(Slot(settings.AddBosToken ?? true, BosToken),
                Slot(settings.AddEosToken ?? false, EosToken));
        }
        _withSpecials = LoadNative(TokenizerJson.Rewrite(doc, postProcessor, unmarkSpecial: false), jsonPath);
        try
        {
            _plain = LoadNative(TokenizerJson.Rewrite(doc, TokenizerJson.NoPostProcessor, unmarkSpecial: true), jsonPath);
        }
        catch
        {
            _withSpecials.Dispose();
            throw;
        }
    }

    // The wrapper only loads from a path; the rewritten copy lives in a temp file just long enough to be read.
    private static Native.Tokenizer LoadNative(byte[] json, string sourcePath)
    {
        string tmp = Path.Combine(Path.GetTempPath(), $"peft-tokenizer-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllBytes(tmp, json);
            return new Native.Tokenizer(tmp);
        }
        catch (Native.TokenizerException e)
        {
            throw new PeftUserException($"The tokenizers library could not load '{sourcePath}': {e.Message}", UserErrorKind.Invalid, e);
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    public int VocabSize => _json.TokenToId.Count;
    public string? BosToken => Role("bos_token");
    public string? EosToken => Role("eos_token");
    public string? UnkToken => Role("unk_token");
    public int? BosTokenId => IdOf(BosToken);
    public int? EosTokenId => IdOf(EosToken);
    public int? UnkTokenId => IdOf(UnkToken);
    public int? PadTokenId => IdOf(PadToken);

    public string? PadToken
    {
        get => Role("pad_token");
        set
        {
            // No new tokens can be added to the native vocabulary, unlike transformers' add_special_tokens.
            if (value is null) _roles.Remove("pad_token");
            else if (TokenToId(value) is null)
                throw new ArgumentException($"Pad token '{value}' is not in the vocabulary; use an existing token such as EosToken.", nameof(value));
            else _roles["pad_token"] = value;
        }
    }

    private string? Role(string role) => _roles.GetValueOrDefault(role);
    private int? IdOf(string? token) => token is null ? null : TokenToId(token);

    public int? TokenToId(string token) => _json.TokenToId.TryGetValue(token, out int id) ? id : null;
    public string? IdToToken(int id) => _json.IdToToken.GetValueOrDefault(id);

    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        ObjectDisposedException.ThrowIf(_disposed, this);
        uint[] ids;
        try { ids = (addSpecialTokens ? _withSpecials : _plain).Encode(text); }
        catch (Native.TokenizerException e) { throw new InvalidOperationException($"Encoding failed: {e.Message}", e); }
        var result = new int[ids.Length];
        for (int i = 0; i < ids.Length; i++) result[i] = checked((int)ids[i]);
        return result;
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var kept = new List<uint>();
        foreach (int id in ids)
        {
            // A negative id is usually a -100 label mask; decoding it silently would hide the bug.
            if (id < 0) throw new ArgumentOutOfRangeException(nameof(ids), id, "Token ids must be non-negative.");
            if (!(skipSpecialTokens && _specialIds.Contains(id))) kept.Add((uint)id);
        }
        if (kept.Count == 0) return "";
        string text;
        try { text = _plain.Decode(kept.ToArray()); }
        catch (Native.TokenizerException e) { throw new InvalidOperationException($"Decoding failed: {e.Message}", e); }
        return CleanUpTokenizationSpaces ? CleanUp(text) : text;
    }

    // transformers' PreTrainedTokenizerBase.clean_up_tokenization.
    private static string CleanUp(string s) => s.Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!")
        .Replace(" ,", ",").Replace(" ' ", "'").Replace(" n't", "n't").Replace(" 'm", "'m").Replace(" 's", "'s")
        .Replace(" 've", "'ve").Replace(" 're", "'re");

    public BatchEncoding EncodeBatch(IReadOnlyList<string> texts, bool addSpecialTokens = true, int? maxLength = null,
        bool truncation = false, bool padToMultipleOf8 = false)
    {
        ArgumentNullException.ThrowIfNull(texts);
        int? limit = truncation ? maxLength ?? ModelMaxLength : null;
        if (limit is <= 0) throw new ArgumentOutOfRangeException(nameof(maxLength), limit, "maxLength must be positive.");

        // Checked up front, not only when lengths differ, so a missing pad token fails on the first batch.
        bool padding = texts.Count > 1 || padToMultipleOf8;
        int? padId = PadTokenId;
        if (padding && padId is null)
            throw new InvalidOperationException(PadToken is { } missing
                ? $"Pad token '{missing}' is not in the vocabulary of '{SourcePath}'."
                : $"The tokenizer '{SourcePath}' has no pad token, so a batch cannot be padded. " +
                  "Set one first, e.g. tokenizer.PadToken = tokenizer.EosToken.");

        var rows = new IReadOnlyList<int>[texts.Count];
        for (int i = 0; i < rows.Length; i++)
            rows[i] = limit is { } n ? EncodeTruncated(texts[i], addSpecialTokens, n) : Encode(texts[i], addSpecialTokens);
        return Pad(rows, padId ?? 0, PaddingSide, padToMultipleOf8 ? 8 : 1);
    }

    /// <summary>
    /// Like transformers, truncates the text's own tokens so that the result, special tokens included, fits in
    /// <paramref name="limit"/>; the post-processor's tokens (e.g. a trailing [SEP] or eos) are kept.
    /// </summary>
    private IReadOnlyList<int> EncodeTruncated(string text, bool addSpecialTokens, int limit)
    {
        var full = Encode(text, addSpecialTokens);
        if (full.Count <= limit) return full;
        if (!addSpecialTokens) return full.Take(limit).ToArray();
        var plain = Encode(text, addSpecialTokens: false);
        int added = full.Count - plain.Count;
        int at = added >= 0 && added < limit ? IndexOf(full, plain, added) : -1;
        if (at < 0) return full.Take(limit).ToArray();   // unusual post-processor: plain cut
        return full.Take(at).Concat(plain.Take(limit - added)).Concat(full.Skip(at + plain.Count)).ToArray();
    }

    // Offset (at most maxOffset) at which `inner` occurs in `outer`, or -1.
    private static int IndexOf(IReadOnlyList<int> outer, IReadOnlyList<int> inner, int maxOffset)
    {
        for (int k = 0; k <= maxOffset; k++)
        {
            int j = 0;
            while (j < inner.Count && outer[k + j] == inner[j]) j++;
            if (j == inner.Count) return k;
        }
        return -1;
    }

    internal static BatchEncoding Pad(IReadOnlyList<IReadOnlyList<int>> rows, int padId, PaddingSide side, int multipleOf)
    {
        int len = rows.Count == 0 ? 0 : rows.Max(r => r.Count);
        len = (len + multipleOf - 1) / multipleOf * multipleOf;
        var ids = new long[rows.Count][];
        var mask = new long[rows.Count][];
        for (int i = 0; i < rows.Count; i++)
        {
            var r = rows[i];
            ids[i] = new long[len];
            mask[i] = new long[len];
            int start = side == PaddingSide.Left ? len - r.Count : 0;
            Array.Fill(ids[i], padId);
            for (int j = 0; j < r.Count; j++)
            {
                ids[i][start + j] = r[j];
                mask[i][start + j] = 1;
            }
        }
        return new BatchEncoding(ids, mask);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _withSpecials.Dispose();
        _plain.Dispose();
    }
}
