using System.Text.Json;

namespace ExtProc.Translation.Common;

/// <summary>One chat.completion.chunk (first choice), read whole before anything is written.</summary>
internal struct OpenAIChunk
{
    public JsonSlice Id;
    public JsonSlice Model;
    public JsonSlice Usage;
    public JsonSlice Error;
    public JsonSlice Content;
    public JsonSlice ReasoningContent;
    public JsonSlice Refusal;
    public JsonSlice ToolCalls;
    public JsonSlice FinishReason;
    public bool HasChoice;
    public bool HasDelta;
    public int ChoiceCount;

    public static OpenAIChunk Read(ReadOnlySpan<byte> data)
    {
        var chunk = default(OpenAIChunk);
        var reader = new Utf8JsonReader(data, JsonRead.Options);
        if (!JsonRead.EnterObject(ref reader))
        {
            throw new JsonException("A chunk must be a JSON object.");
        }

        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("id"u8))
            {
                chunk.Id = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("model"u8))
            {
                chunk.Model = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                chunk.Usage = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                chunk.Error = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("choices"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    reader.Skip();
                    continue;
                }

                while (JsonRead.NextElement(ref reader))
                {
                    chunk.ChoiceCount++;
                    if (chunk.HasChoice || reader.TokenType != JsonTokenType.StartObject)
                    {
                        reader.Skip();
                        continue;
                    }

                    chunk.HasChoice = true;
                    ReadChoice(ref reader, ref chunk);
                }
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        if (reader.Read())
        {
            throw new JsonException("Trailing data after a chunk.");
        }

        return chunk;
    }

    private static void ReadChoice(ref Utf8JsonReader reader, ref OpenAIChunk chunk)
    {
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("finish_reason"u8))
            {
                chunk.FinishReason = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("delta"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                chunk.HasDelta = true;
                while (JsonRead.NextProperty(ref reader))
                {
                    if (reader.ValueTextEquals("content"u8))
                    {
                        chunk.Content = JsonRead.PropertyValue(ref reader, 0);
                    }
                    else if (reader.ValueTextEquals("reasoning_content"u8))
                    {
                        chunk.ReasoningContent = JsonRead.PropertyValue(ref reader, 0);
                    }
                    else if (reader.ValueTextEquals("refusal"u8))
                    {
                        chunk.Refusal = JsonRead.PropertyValue(ref reader, 0);
                    }
                    else if (reader.ValueTextEquals("tool_calls"u8))
                    {
                        chunk.ToolCalls = JsonRead.PropertyValue(ref reader, 0);
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
}

/// <summary>One entry of a chunk's <c>delta.tool_calls</c>.</summary>
internal struct OpenAIToolCallDelta
{
    public int Index;
    public JsonSlice Id;
    public JsonSlice Name;
    public JsonSlice Arguments;

    public static OpenAIToolCallDelta Read(ref Utf8JsonReader reader, int origin)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A tool call delta must be an object.");
        }

        var delta = new OpenAIToolCallDelta { Index = -1 };
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                delta.Index = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var index) && index >= 0 ? index : -1;
            }
            else if (reader.ValueTextEquals("id"u8))
            {
                delta.Id = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("function"u8))
            {
                (delta.Name, delta.Arguments) = OpenAIFunctionCall.Read(ref reader, origin);
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        return delta;
    }
}

/// <summary>
/// Keys the tool calls of a stream (providers.md §5.7): by <c>index</c> when present, else by <c>id</c>,
/// else the most recent call. Returns a dense per-response number for each call.
/// </summary>
internal sealed class ToolCallKeys
{
    private readonly List<(int Index, string? Id)> _calls = [];

    public int Count => _calls.Count;

    /// <summary>The call's number, and whether this delta starts it.</summary>
    public int Resolve(int index, string? id, out bool isNew)
    {
        isNew = false;
        for (var i = 0; i < _calls.Count; i++)
        {
            if ((index >= 0 && _calls[i].Index == index) || (index < 0 && id is not null && _calls[i].Id == id))
            {
                return i;
            }
        }

        if (index < 0 && id is null)
        {
            if (_calls.Count > 0)
            {
                return _calls.Count - 1;
            }
        }

        isNew = true;
        _calls.Add((index, id));
        return _calls.Count - 1;
    }
}
