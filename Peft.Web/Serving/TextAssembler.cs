using Peft.Training.Serving;

namespace Peft.Web.Serving;

/// <summary>
/// Turns one sequence's tokens into text, cut before the first stop string, and into stream deltas whose
/// concatenation is exactly the final text: a delta is only released once no later token or stop string can change
/// it (incomplete UTF-8 and a possible stop-string prefix are held back).
/// </summary>
public sealed class TextAssembler(InferenceService service, IReadOnlyList<string> stops)
{
    private readonly List<int> _ids = new();
    private readonly int _holdBack = stops.Count == 0 ? 0 : stops.Max(s => s.Length) - 1;
    private int _sent;

    public string Text { get; private set; } = "";

    private string Current()
    {
        string full = service.Decode(_ids);
        int cut = stops.Select(s => full.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(full.Length).Min();
        return full[..cut];
    }

    /// <summary>Adds a token; returns the text now safe to send (possibly empty).</summary>
    public string Push(int tokenId)
    {
        _ids.Add(tokenId);
        string current = Current();
        int safe = current.Length - _holdBack;
        while (safe > 0 && current[safe - 1] == '\uFFFD') safe--;
        if (safe <= _sent) return "";
        string delta = current[_sent..safe];
        _sent = safe;
        return delta;
    }

    /// <summary>The sequence ended: returns the rest of the final text.</summary>
    public string Finish(SequenceResult result)
    {
        if (_ids.Count != result.Tokens.Count)
        {
            _ids.Clear();
            _ids.AddRange(result.Tokens.Select(t => t.TokenId));
        }
        Text = Current();
        string rest = _sent <= Text.Length ? Text[_sent..] : "";
        _sent = Text.Length;
        return rest;
    }
}
