using System.Text;

namespace Peft.Core.Data;

/// <summary>RFC 4180 reader: quoted fields may hold separators, doubled quotes and line breaks.</summary>
internal sealed class CsvParser(TextReader reader, char separator)
{
    public sealed record Row(int Line, IReadOnlyList<string> Fields);

    private int _line = 1;

    /// <summary>The next row, or null at end of input. An unterminated quote throws "line: message".</summary>
    public Row? Next()
    {
        if (reader.Peek() < 0) return null;
        int start = _line;
        var fields = new List<string>();
        var field = new StringBuilder();
        bool quoted = false, wasQuoted = false;
        while (true)
        {
            int c = reader.Read();
            if (c < 0)
            {
                if (quoted) throw new DataFormatException($"{start}: unterminated quoted field");
                break;
            }
            char ch = (char)c;
            if (quoted)
            {
                if (ch == '"')
                {
                    if (reader.Peek() == '"') { reader.Read(); field.Append('"'); }
                    else quoted = false;
                }
                else
                {
                    if (ch == '\n') _line++;
                    field.Append(ch);
                }
                continue;
            }
            if (ch == '"' && field.Length == 0 && !wasQuoted) { quoted = wasQuoted = true; continue; }
            if (ch == separator)
            {
                fields.Add(field.ToString());
                field.Clear();
                wasQuoted = false;
                continue;
            }
            if (ch == '\r') continue;
            if (ch == '\n') { _line++; break; }
            field.Append(ch);
        }
        fields.Add(field.ToString());
        return new Row(start, fields);
    }
}
