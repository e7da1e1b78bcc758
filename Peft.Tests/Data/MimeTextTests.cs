using System.Text;
using Peft.Training.Data.Corpora;

namespace Peft.Tests.Data;

public class MimeTextTests
{
    private static string Extract(string message, int maxChars = 4000, Encoding? encoding = null) =>
        MimeText.Extract((encoding ?? Encoding.Latin1).GetBytes(message.ReplaceLineEndings("\n")), maxChars);

    [Fact]
    public void PlainMessage_KeepsSubjectAndBody_DropsOtherHeaders()
    {
        string text = Extract("""
            From someone@example.com  Thu Aug 22 13:17:22 2002
            Subject: Re: caf=?iso-8859-1?Q?=E9_?=
             =?utf-8?B?bWVldGluZw==?=
            X-Spam-Status: No, hits=-5.0
            Content-Type: text/plain; charset="iso-8859-1"

            Let's meet at the café.


            Bye
            """);
        Assert.Equal("Subject: Re: café meeting\n\nLet's meet at the café.\n\nBye", text);
    }

    [Fact]
    public void MultipartAlternative_PrefersPlainText_DecodesQuotedPrintable()
    {
        string text = Extract("""
            Subject: Offer
            Content-Type: multipart/alternative; boundary="XYZ"

            This is a MIME message.
            --XYZ
            Content-Type: text/html

            <p>HTML version</p>
            --XYZ
            Content-Type: text/plain; charset=utf-8
            Content-Transfer-Encoding: quoted-printable

            Only =E2=82=AC5 today, a very long line that is =
            softly broken.
            --XYZ--
            epilogue
            """);
        Assert.Equal("Subject: Offer\n\nOnly €5 today, a very long line that is softly broken.", text);
    }

    [Fact]
    public void Html_IsReducedToText()
    {
        string html = "<html><head><title>t</title><style>p {color:red}</style></head><body><script>alert(1)</script>" +
            "<!-- hidden --><P>Click <A href=\"x\">here</A>&nbsp;now &amp; save!</P><br>Unsubscribe</body></html>";
        string text = Extract("Subject: Win\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n" +
            Convert.ToBase64String(Encoding.ASCII.GetBytes(html)) + "\n");
        Assert.Equal("Subject: Win\n\nClick here now & save!\n\nUnsubscribe", text);
    }

    [Fact]
    public void MixedWithAttachment_KeepsOnlyTextParts()
    {
        string text = Extract("""
            Subject: Report
            Content-Type: multipart/mixed; boundary=b1

            --b1
            Content-Type: text/plain

            See attached.
            --b1
            Content-Type: application/octet-stream
            Content-Transfer-Encoding: base64

            AAECAwQF
            --b1--
            """);
        Assert.Equal("Subject: Report\n\nSee attached.", text);
    }

    [Fact]
    public void EightBitBody_WithoutCharset_IsUtf8WhenValidElseWindows1252()
    {
        Assert.Equal("Subject: x\n\nnaïve “quotes”", Extract("Subject: x\n\nnaïve “quotes”\n", encoding: Encoding.UTF8));
        var cp1252 = new byte[] { 0x93, 0x68, 0x69, 0x94 };   // “hi” in Windows-1252, invalid as UTF-8
        var raw = Encoding.ASCII.GetBytes("Subject: x\n\n").Concat(cp1252).ToArray();
        Assert.Equal("Subject: x\n\n“hi”", MimeText.Extract(raw, 100));
    }

    [Fact]
    public void LongText_IsCutAtWhitespace()
    {
        string text = Extract("Subject: s\n\n" + string.Join(" ", Enumerable.Repeat("spam", 100)), maxChars: 50);
        Assert.True(text.Length <= 50);
        Assert.EndsWith("spam", text);
    }
}
