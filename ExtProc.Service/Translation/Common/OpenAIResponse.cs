using System.Text.Json;

namespace ExtProc.Translation.Common;

/// <summary>Where the parts of a buffered OpenAI chat completion are (first choice only: n is 1 for translated requests).</summary>
internal struct OpenAIResponse
{
    public JsonSlice Id;
    public JsonSlice Model;
    public JsonSlice Usage;
    public JsonSlice Content;
    public JsonSlice Refusal;
    public JsonSlice ReasoningContent;
    public JsonSlice ToolCalls;
    public JsonSlice FinishReason;
    public bool HasChoice;

    /// <summary>Reads and validates the whole document; throws <see cref="JsonException"/> when it is not a completion.</summary>
    public static OpenAIResponse Read(ReadOnlySpan<byte> document)
    {
        var result = default(OpenAIResponse);
        var reader = new Utf8JsonReader(document, JsonRead.Options);
        if (!System.Text.Unicode.Utf8.IsValid(document) || !JsonRead.EnterObject(ref reader))
        {
            throw new JsonException("The response must be an object.");
        }

        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("id"u8))
            {
                result.Id = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("model"u8))
            {
                result.Model = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                result.Usage = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("choices"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    throw new JsonException("choices must be an array.");
                }

                while (JsonRead.NextElement(ref reader))
                {
                    if (result.HasChoice || reader.TokenType != JsonTokenType.StartObject)
                    {
                        reader.Skip();
                        continue;
                    }

                    result.HasChoice = true;
                    ReadChoice(ref reader, ref result);
                }
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        if (reader.Read() || !result.HasChoice)
        {
            throw new JsonException("The response has no choice.");
        }

        return result;
    }

    private static void ReadChoice(ref Utf8JsonReader reader, ref OpenAIResponse result)
    {
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("finish_reason"u8))
            {
                result.FinishReason = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("message"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    throw new JsonException("message must be an object.");
                }

                while (JsonRead.NextProperty(ref reader))
                {
                    if (reader.ValueTextEquals("content"u8))
                    {
                        result.Content = JsonRead.PropertyValue(ref reader, 0);
                    }
                    else if (reader.ValueTextEquals("refusal"u8))
                    {
                        result.Refusal = JsonRead.PropertyValue(ref reader, 0);
                    }
                    else if (reader.ValueTextEquals("reasoning_content"u8))
                    {
                        result.ReasoningContent = JsonRead.PropertyValue(ref reader, 0);
                    }
                    else if (reader.ValueTextEquals("tool_calls"u8))
                    {
                        result.ToolCalls = JsonRead.PropertyValue(ref reader, 0);
                    }
                    else
                    {
                        JsonRead.SkipPropertyValue(ref reader);
                    }
                }
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }
    }

    public readonly int ToolCallCount(ReadOnlySpan<byte> document)
    {
        if (ToolCalls.Kind(document) != JsonTokenType.StartArray)
        {
            return 0;
        }

        var count = 0;
        var reader = ToolCalls.Reader(document);
        reader.Read();
        while (JsonRead.NextElement(ref reader))
        {
            reader.Skip();
            count++;
        }

        return count;
    }

    /// <summary>Text of <c>content</c>: a string, or the text parts of an array (Mistral), unescaped into <paramref name="text"/>.</summary>
    public readonly void AppendContent(ReadOnlySpan<byte> document, ref TextBuffer text)
    {
        if (Content.Kind(document) == JsonTokenType.String)
        {
            var reader = Content.Reader(document);
            reader.Read();
            text.Append(ref reader);
            return;
        }

        if (Content.Kind(document) != JsonTokenType.StartArray)
        {
            return;
        }

        var parts = Content.Reader(document);
        parts.Read();
        while (JsonRead.NextElement(ref parts))
        {
            var part = OpenAIPart.Read(ref parts, Content.Start);
            if (JsonRead.StringEquals(document, part.Type, "text"u8) && part.Text.Kind(document) == JsonTokenType.String)
            {
                var value = part.Text.Reader(document);
                value.Read();
                text.Append(ref value);
            }
        }
    }
}
