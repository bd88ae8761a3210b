using System.Text.Json;

namespace ExtProc.Translation.Common;

/// <summary>
/// The text of an OpenAI message content (a string, or the text parts of an array) written as one object per
/// non-empty text: <c>{"text":…}</c> for Gemini parts, <c>{"type":"text","text":…}</c> for Anthropic blocks. Empty
/// texts are left out (Anthropic rejects them, Gemini has no use for them); the text is copied as it is escaped.
/// </summary>
internal static class OpenAIText
{
    public static void WriteAll(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice content, bool typed)
    {
        if (content.Kind(document) == JsonTokenType.String)
        {
            WriteOne(writer, document, content, typed);
            return;
        }

        if (content.Kind(document) != JsonTokenType.StartArray)
        {
            return;
        }

        var reader = content.Reader(document);
        reader.Read();
        while (JsonRead.NextElement(ref reader))
        {
            var part = OpenAIPart.Read(ref reader, content.Start);
            if (part.Text.Kind(document) == JsonTokenType.String)
            {
                WriteOne(writer, document, part.Text, typed);
            }
        }
    }

    public static void WriteOne(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice text, bool typed)
    {
        if (text.Length <= 2)
        {
            return; // ""
        }

        writer.WriteStartObject();
        if (typed)
        {
            writer.WriteString(JsonNames.Type, JsonNames.Text);
        }

        JsonOut.Raw(writer, JsonNames.Text, document, text);
        writer.WriteEndObject();
    }
}
