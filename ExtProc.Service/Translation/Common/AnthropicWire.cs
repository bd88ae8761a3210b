using System.Text.Json;

namespace ExtProc.Translation.Common;

internal enum AnthropicEventType
{
    Unknown,
    MessageStart,
    ContentBlockStart,
    ContentBlockDelta,
    ContentBlockStop,
    MessageDelta,
    MessageStop,
    Ping,
    Error,
}

/// <summary>The top level of one Anthropic stream event's data (the <c>type</c> field decides, as in the SDK).</summary>
internal struct AnthropicEvent
{
    public AnthropicEventType Type;
    public int Index;
    public JsonSlice Message;
    public JsonSlice ContentBlock;
    public JsonSlice Delta;
    public JsonSlice Usage;

    public static AnthropicEvent Read(ReadOnlySpan<byte> data)
    {
        var result = new AnthropicEvent { Index = -1 };
        var reader = new Utf8JsonReader(data, JsonRead.Options);
        if (!JsonRead.EnterObject(ref reader))
        {
            throw new JsonException("An event's data must be a JSON object.");
        }

        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                result.Type = reader.ValueTextEquals("message_start"u8) ? AnthropicEventType.MessageStart
                    : reader.ValueTextEquals("content_block_start"u8) ? AnthropicEventType.ContentBlockStart
                    : reader.ValueTextEquals("content_block_delta"u8) ? AnthropicEventType.ContentBlockDelta
                    : reader.ValueTextEquals("content_block_stop"u8) ? AnthropicEventType.ContentBlockStop
                    : reader.ValueTextEquals("message_delta"u8) ? AnthropicEventType.MessageDelta
                    : reader.ValueTextEquals("message_stop"u8) ? AnthropicEventType.MessageStop
                    : reader.ValueTextEquals("ping"u8) ? AnthropicEventType.Ping
                    : reader.ValueTextEquals("error"u8) ? AnthropicEventType.Error
                    : AnthropicEventType.Unknown;
            }
            else if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                result.Index = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var index) ? index : -1;
            }
            else if (reader.ValueTextEquals("message"u8))
            {
                result.Message = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("content_block"u8))
            {
                result.ContentBlock = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("delta"u8))
            {
                result.Delta = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                result.Usage = JsonRead.PropertyValue(ref reader, 0);
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        if (reader.Read())
        {
            throw new JsonException("Trailing data after an event.");
        }

        return result;
    }

    /// <summary>The stop_reason string of a message_delta's delta (unescaped ASCII), or empty.</summary>
    public static ReadOnlySpan<byte> StopReason(ReadOnlySpan<byte> data, JsonSlice delta)
    {
        if (delta.Kind(data) != JsonTokenType.StartObject)
        {
            return default;
        }

        var reader = delta.Reader(data);
        reader.Read();
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("stop_reason"u8))
            {
                reader.Read();
                return reader.TokenType == JsonTokenType.String && !reader.ValueIsEscaped
                    ? data.Slice(delta.Start + (int)reader.TokenStartIndex + 1, reader.ValueSpan.Length)
                    : default;
            }

            JsonRead.SkipPropertyValue(ref reader);
        }

        return default;
    }
}

/// <summary>A content block (response content[] entry or a stream's content_block).</summary>
internal struct AnthropicBlock
{
    public bool IsText;
    public bool IsToolUse;
    public bool IsThinking;
    public JsonSlice Text;
    public JsonSlice Id;
    public JsonSlice Name;
    public JsonSlice Input;

    public static AnthropicBlock Read(ReadOnlySpan<byte> document, JsonSlice block)
    {
        var result = default(AnthropicBlock);
        var reader = block.Reader(document);
        if (!JsonRead.EnterObject(ref reader))
        {
            throw new JsonException("A content block must be an object.");
        }

        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                result.IsText = reader.ValueTextEquals("text"u8);
                result.IsToolUse = reader.ValueTextEquals("tool_use"u8);
                result.IsThinking = reader.ValueTextEquals("thinking"u8);
            }
            else if (reader.ValueTextEquals("text"u8) || reader.ValueTextEquals("thinking"u8))
            {
                result.Text = JsonRead.PropertyValue(ref reader, block.Start);
            }
            else if (reader.ValueTextEquals("id"u8))
            {
                result.Id = JsonRead.PropertyValue(ref reader, block.Start);
            }
            else if (reader.ValueTextEquals("name"u8))
            {
                result.Name = JsonRead.PropertyValue(ref reader, block.Start);
            }
            else if (reader.ValueTextEquals("input"u8))
            {
                result.Input = JsonRead.PropertyValue(ref reader, block.Start);
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        return result;
    }
}

internal enum AnthropicDeltaKind
{
    Other,
    Text,
    InputJson,
    Thinking,
}

/// <summary>A content_block_delta's delta.</summary>
internal struct AnthropicDelta
{
    public AnthropicDeltaKind Kind;
    public JsonSlice Value;

    public static AnthropicDelta Read(ReadOnlySpan<byte> data, JsonSlice delta)
    {
        var result = default(AnthropicDelta);
        var reader = delta.Reader(data);
        if (!JsonRead.EnterObject(ref reader))
        {
            throw new JsonException("A delta must be an object.");
        }

        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                result.Kind = reader.ValueTextEquals("text_delta"u8) ? AnthropicDeltaKind.Text
                    : reader.ValueTextEquals("input_json_delta"u8) ? AnthropicDeltaKind.InputJson
                    : reader.ValueTextEquals("thinking_delta"u8) ? AnthropicDeltaKind.Thinking
                    : AnthropicDeltaKind.Other;
            }
            else if (reader.ValueTextEquals("text"u8) || reader.ValueTextEquals("partial_json"u8) || reader.ValueTextEquals("thinking"u8))
            {
                result.Value = JsonRead.PropertyValue(ref reader, delta.Start);
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        return result;
    }
}
