namespace Peft.Training.Data;

/// <summary>A piece of rendered chat text; <c>Train</c> pieces are what the model learns to produce (assistant turns).</summary>
public sealed record ChatSegment(string Text, bool Train);

/// <summary>The chat layouts this port can render.</summary>
public enum ChatTemplateFamily { ChatML, Llama3, Llama2, Zephyr }

/// <summary>
/// Renders chats for training. A Jinja engine is out of scope: the tokenizer's <c>chat_template</c> is recognised by
/// its markers and rendered by a small hand-written formatter of that family:
/// <list type="bullet">
/// <item>ChatML (<c>&lt;|im_start|&gt;</c>: Qwen, many fine-tunes): <c>&lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n</c></item>
/// <item>Llama 3 (<c>&lt;|start_header_id|&gt;</c>): <c>&lt;|start_header_id|&gt;{role}&lt;|end_header_id|&gt;\n\n{content}&lt;|eot_id|&gt;</c>,
/// preceded by bos when the template uses <c>bos_token</c></item>
/// <item>Llama 2 / Mistral (<c>[INST]</c>): <c>{bos}[INST] {user} [/INST] {assistant} {eos}</c>, a system message wrapped in
/// <c>&lt;&lt;SYS&gt;&gt;</c> into the first user turn</item>
/// <item>Zephyr / TinyLlama (<c>&lt;|user|&gt;</c>): <c>&lt;|{role}|&gt;\n{content}{eos}\n</c></item>
/// </list>
/// With no template, or one not recognised, the documented default is ChatML. Assistant content plus its end
/// marker is marked trainable.
/// </summary>
public static class ChatTemplates
{
    public static ChatTemplateFamily Detect(string? template)
    {
        if (template is null) return ChatTemplateFamily.ChatML;
        if (template.Contains("<|start_header_id|>", StringComparison.Ordinal)) return ChatTemplateFamily.Llama3;
        if (template.Contains("<|im_start|>", StringComparison.Ordinal)) return ChatTemplateFamily.ChatML;
        if (template.Contains("[INST]", StringComparison.Ordinal)) return ChatTemplateFamily.Llama2;
        if (template.Contains("<|user|>", StringComparison.Ordinal)) return ChatTemplateFamily.Zephyr;
        return ChatTemplateFamily.ChatML;
    }

    public static List<ChatSegment> Render(IReadOnlyList<ChatMessage> messages, string? template, string? bosToken, string? eosToken)
    {
        var family = Detect(template);
        bool templateUsesBos = template?.Contains("bos_token", StringComparison.Ordinal) == true;
        var segs = new List<ChatSegment>();
        switch (family)
        {
            case ChatTemplateFamily.Llama3:
                if (templateUsesBos && bosToken is not null) segs.Add(new(bosToken, false));
                foreach (var m in messages)
                {
                    segs.Add(new($"<|start_header_id|>{m.Role}<|end_header_id|>\n\n", false));
                    segs.Add(new(m.Content.Trim() + "<|eot_id|>", IsAssistant(m)));
                }
                break;
            case ChatTemplateFamily.Llama2:
                RenderLlama2(messages, bosToken, eosToken, segs);
                break;
            case ChatTemplateFamily.Zephyr:
                foreach (var m in messages)
                {
                    segs.Add(new($"<|{m.Role}|>\n", false));
                    segs.Add(new(m.Content + eosToken, IsAssistant(m)));
                    segs.Add(new("\n", false));
                }
                break;
            default:
                foreach (var m in messages)
                {
                    segs.Add(new($"<|im_start|>{m.Role}\n", false));
                    segs.Add(new(m.Content + "<|im_end|>", IsAssistant(m)));
                    segs.Add(new("\n", false));
                }
                break;
        }
        return segs;
    }

    private static bool IsAssistant(ChatMessage m) => m.Role == "assistant";

    private static void RenderLlama2(IReadOnlyList<ChatMessage> messages, string? bos, string? eos, List<ChatSegment> segs)
    {
        string? system = messages.Count > 0 && messages[0].Role == "system" ? messages[0].Content : null;
        bool first = true;
        foreach (var m in messages.Skip(system is null ? 0 : 1))
        {
            if (m.Role == "user")
            {
                string content = first && system is not null ? $"<<SYS>>\n{system}\n<</SYS>>\n\n{m.Content}" : m.Content;
                segs.Add(new($"{bos}[INST] {content.Trim()} [/INST]", false));
                first = false;
            }
            else if (IsAssistant(m))
            {
                segs.Add(new(" " + m.Content.Trim() + " " + eos, true));
            }
            else
            {
                throw new ArgumentException($"role '{m.Role}' is not supported by the Llama-2 chat format (system first, then user/assistant)");
            }
        }
    }
}
