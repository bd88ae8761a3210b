using System.Text.Json;

namespace ExtProc.Translation.Common;

/// <summary>
/// The head of an OpenAI chat completion choice's <c>message</c> as the SDKs expect it (content null when there is
/// no text, refusal always present, reasoning only when the upstream reasoned); the caller adds tool calls and
/// closes the object.
/// </summary>
internal static class OpenAIMessageOut
{
    public static void WriteStart(Utf8JsonWriter writer, ReadOnlySpan<byte> text, ReadOnlySpan<byte> reasoning)
    {
        writer.WriteStartObject("message"u8);
        writer.WriteString("role"u8, "assistant"u8);
        if (text.Length > 0)
        {
            writer.WriteString("content"u8, text);
        }
        else
        {
            writer.WriteNull("content"u8);
        }

        writer.WriteNull("refusal"u8);
        if (reasoning.Length > 0)
        {
            writer.WriteString("reasoning_content"u8, reasoning);
        }
    }
}
