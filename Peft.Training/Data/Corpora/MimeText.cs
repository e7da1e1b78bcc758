using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace Peft.Training.Data.Corpora;

/// <summary>
/// Readable text of a raw e-mail: the decoded Subject and the text of its body. Handles what the SpamAssassin corpus
/// contains: folded headers, RFC 2047 encoded words, multipart bodies (text/plain preferred over text/html in
/// multipart/alternative), base64 and quoted-printable, legacy charsets, HTML markup. Other headers are dropped,
/// both as noise and because some (X-Spam-*, mailing-list headers) would give the label away.
/// </summary>
public static partial class MimeText
{
    static MimeText() => Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);

    /// <summary>"Subject: …" then a blank line and the body text, at most <paramref name="maxChars"/> characters.</summary>
    public static string Extract(byte[] raw, int maxChars)
    {
        ArgumentNullException.ThrowIfNull(raw);
        // Latin-1 maps bytes 1:1 to chars, so 8-bit bodies can be turned back into bytes for their real charset.
        var (headers, body) = SplitMessage(Encoding.Latin1.GetString(raw));
        string subject = TextCleaner.NormalizeWhitespace(DecodeHeader(headers.GetValueOrDefault("subject") ?? ""));
        var text = BodyText(headers, body, 0)?.Text ?? "";
        string result = $"Subject: {subject}\n\n{CleanLines(text)}".TrimEnd();
        return Truncate(result, maxChars);
    }

    private static (Dictionary<string, string> Headers, string Body) SplitMessage(string message)
    {
        message = message.ReplaceLineEndings("\n");
        int end = message.StartsWith('\n') ? 0 : message.IndexOf("\n\n", StringComparison.Ordinal);
        string head = end < 0 ? message : message[..end];
        string body = end < 0 ? "" : message[(end + (message.StartsWith('\n') ? 1 : 2))..];
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        string? last = null;
        foreach (var line in head.Split('\n'))
        {
            if (line.Length > 0 && (line[0] == ' ' || line[0] == '\t') && last is not null)
            {
                headers[last] += " " + line.Trim();   // folded continuation line
                continue;
            }
            int colon = line.IndexOf(':');
            if (colon <= 0) continue;   // the mbox "From " line and junk
            // The first occurrence wins (a repeated header's continuation lines are dropped with it).
            string name = line[..colon].Trim();
            last = headers.TryAdd(name, line[(colon + 1)..].Trim()) ? name : null;
        }
        return (headers, body);
    }

    private sealed record Part(string Type, string Text);

    private static Part? BodyText(Dictionary<string, string> headers, string body, int depth)
    {
        if (depth > 10) return null;
        var (type, parameters) = ContentType(headers.GetValueOrDefault("content-type"));
        if (type.StartsWith("multipart/", StringComparison.Ordinal) && parameters.TryGetValue("boundary", out var boundary))
        {
            var parts = SplitMultipart(body, boundary).Select(p =>
            {
                var (h, b) = SplitMessage(p);
                return BodyText(h, b, depth + 1);
            }).OfType<Part>().ToList();
            if (type == "multipart/alternative")
                return parts.FirstOrDefault(p => p.Type == "text/plain") ?? parts.FirstOrDefault();
            return parts.Count == 0 ? null : new Part("text/plain", string.Join("\n\n", parts.Select(p => p.Text)));
        }
        if (type == "message/rfc822")
        {
            var (h, b) = SplitMessage(body);
            return BodyText(h, b, depth + 1);
        }
        if (type is not ("text/plain" or "text/html")) return null;   // attachments, images
        string text = DecodeBody(body, headers.GetValueOrDefault("content-transfer-encoding"), parameters.GetValueOrDefault("charset"));
        return new Part(type, type == "text/html" ? HtmlToText(text) : text);
    }

    private static (string Type, Dictionary<string, string> Params) ContentType(string? header)
    {
        var parameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (string.IsNullOrWhiteSpace(header)) return ("text/plain", parameters);
        var pieces = header.Split(';');
        foreach (var p in pieces.Skip(1))
        {
            int eq = p.IndexOf('=');
            if (eq > 0) parameters[p[..eq].Trim()] = p[(eq + 1)..].Trim().Trim('"');
        }
        return (pieces[0].Trim().ToLowerInvariant(), parameters);
    }

    private static IEnumerable<string> SplitMultipart(string body, string boundary)
    {
        string delimiter = "--" + boundary;
        StringBuilder? current = null;
        foreach (var line in body.Split('\n'))
        {
            string trimmed = line.TrimEnd();
            if (trimmed == delimiter + "--")
            {
                if (current is not null) yield return current.ToString();
                yield break;
            }
            if (trimmed == delimiter)
            {
                if (current is not null) yield return current.ToString();
                current = new StringBuilder();
                continue;
            }
            current?.Append(line).Append('\n');   // the preamble before the first delimiter is skipped
        }
        if (current is not null) yield return current.ToString();   // unterminated last part
    }

    private static string DecodeBody(string body, string? transferEncoding, string? charset)
    {
        byte[] bytes = (transferEncoding?.Trim().ToLowerInvariant()) switch
        {
            "base64" => FromBase64(body),
            "quoted-printable" => FromQuotedPrintable(body, underscoreIsSpace: false),
            _ => Encoding.Latin1.GetBytes(body),
        };
        return Decode(bytes, charset);
    }

    // Junk after the padding or stray characters are common in spam; decode what is valid.
    private static byte[] FromBase64(string s)
    {
        var clean = new StringBuilder(s.Length);
        foreach (char c in s)
            if (char.IsAsciiLetterOrDigit(c) || c is '+' or '/') clean.Append(c);
        // Padding was dropped with the junk: re-pad (a lone trailing sextet carries no whole byte).
        if (clean.Length % 4 == 1) clean.Length--;
        if (clean.Length % 4 != 0) clean.Append('=', 4 - clean.Length % 4);
        try { return Convert.FromBase64String(clean.ToString()); }
        catch (FormatException) { return Encoding.Latin1.GetBytes(s); }
    }

    private static byte[] FromQuotedPrintable(string s, bool underscoreIsSpace)
    {
        var bytes = new List<byte>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '=' && i + 1 < s.Length && s[i + 1] == '\n') { i++; continue; }   // soft line break
            if (c == '=' && i + 2 < s.Length && Uri.IsHexDigit(s[i + 1]) && Uri.IsHexDigit(s[i + 2]))
            {
                bytes.Add(Convert.ToByte(s.Substring(i + 1, 2), 16));
                i += 2;
                continue;
            }
            bytes.Add(underscoreIsSpace && c == '_' ? (byte)' ' : (byte)c);
        }
        return bytes.ToArray();
    }

    // A declared charset is trusted when known; otherwise valid UTF-8 is UTF-8 and anything else Windows-1252.
    private static string Decode(byte[] bytes, string? charset)
    {
        if (!string.IsNullOrWhiteSpace(charset))
        {
            try { return Encoding.GetEncoding(charset.Trim()).GetString(bytes); }
            catch (ArgumentException) { }
        }
        try { return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (DecoderFallbackException) { return Encoding.GetEncoding(1252).GetString(bytes); }
    }

    /// <summary>RFC 2047 "=?charset?B|Q?…?=" words; undecodable words stay as they are.</summary>
    internal static string DecodeHeader(string value)
    {
        value = Decode(Encoding.Latin1.GetBytes(value), null);   // raw 8-bit bytes; encoded words are ASCII
        // Whitespace between two adjacent encoded words is not part of the text.
        value = BetweenEncodedWords().Replace(value, "?==?");
        return EncodedWord().Replace(value, m =>
        {
            string data = m.Groups[3].Value;
            byte[] bytes = m.Groups[2].Value.Equals("B", StringComparison.OrdinalIgnoreCase)
                ? FromBase64(data)
                : FromQuotedPrintable(data, underscoreIsSpace: true);
            return Decode(bytes, m.Groups[1].Value);
        });
    }

    [GeneratedRegex(@"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")]
    private static partial Regex EncodedWord();

    [GeneratedRegex(@"\?=\s+=\?")]
    private static partial Regex BetweenEncodedWords();

    private static string HtmlToText(string html)
    {
        html = HtmlDropped().Replace(html, " ");
        html = HtmlBreaks().Replace(html, "\n");
        html = HtmlTag().Replace(html, " ");
        return WebUtility.HtmlDecode(html);
    }

    [GeneratedRegex(@"<!--.*?-->|<(script|style|head)\b.*?</\1\s*>", RegexOptions.Singleline | RegexOptions.IgnoreCase)]
    private static partial Regex HtmlDropped();

    [GeneratedRegex(@"<(br|/p|/div|/tr|/li|/h[1-6]|/table|p|div|tr|li)\b[^>]*>", RegexOptions.IgnoreCase)]
    private static partial Regex HtmlBreaks();

    [GeneratedRegex(@"<[^>]*>")]
    private static partial Regex HtmlTag();

    // Lines normalised, runs of blank lines reduced to one.
    private static string CleanLines(string text)
    {
        var sb = new StringBuilder(text.Length);
        bool blank = true;
        foreach (var raw in TextCleaner.Lines(text))
        {
            string line = TextCleaner.NormalizeWhitespace(raw);
            if (line.Length == 0)
            {
                if (!blank) sb.Append('\n');
                blank = true;
                continue;
            }
            sb.Append(line).Append('\n');
            blank = false;
        }
        return sb.ToString().Trim();
    }

    private static string Truncate(string s, int maxChars)
    {
        if (s.Length <= maxChars) return s;
        int cut = s.LastIndexOfAny([' ', '\n'], maxChars - 1);
        return s[..(cut > maxChars / 2 ? cut : maxChars)].TrimEnd();
    }
}
