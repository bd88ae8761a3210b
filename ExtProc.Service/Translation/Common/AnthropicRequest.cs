using System.Text.Json;

namespace ExtProc.Translation.Common;

/// <summary>Where the fields of an Anthropic Messages request are (one pass over the top level; repeated fields refused).</summary>
internal struct AnthropicRequest
{
    public JsonSlice Model;
    public JsonSlice MaxTokens;
    public JsonSlice System;
    public JsonSlice Messages;
    public JsonSlice Tools;
    public JsonSlice ToolChoice;
    public JsonSlice StopSequences;
    public JsonSlice Temperature;
    public JsonSlice TopP;
    public JsonSlice Stream;
    public JsonSlice Metadata;
    public JsonSlice Thinking;

    public static string? Read(ReadOnlySpan<byte> document, out AnthropicRequest request)
    {
        request = default;
        var reader = new Utf8JsonReader(document, JsonRead.Options);
        if (!JsonRead.EnterObject(ref reader))
        {
            return "The request body must be a JSON object.";
        }

        while (JsonRead.NextProperty(ref reader))
        {
            ref var slot = ref Slot(ref request, ref reader);
            if (global::System.Runtime.CompilerServices.Unsafe.IsNullRef(ref slot))
            {
                JsonRead.SkipPropertyValue(ref reader);
                continue;
            }

            if (slot.IsPresent)
            {
                return "The request body repeats a field.";
            }

            slot = JsonRead.PropertyValue(ref reader, 0);
        }

        return request.Messages.Kind(document) != JsonTokenType.StartArray ? "The request needs a messages array." : null;
    }

    private static ref JsonSlice Slot(ref AnthropicRequest r, ref Utf8JsonReader reader)
    {
        if (reader.ValueTextEquals("model"u8))
        {
            return ref r.Model;
        }

        if (reader.ValueTextEquals("max_tokens"u8))
        {
            return ref r.MaxTokens;
        }

        if (reader.ValueTextEquals("system"u8))
        {
            return ref r.System;
        }

        if (reader.ValueTextEquals("messages"u8))
        {
            return ref r.Messages;
        }

        if (reader.ValueTextEquals("tools"u8))
        {
            return ref r.Tools;
        }

        if (reader.ValueTextEquals("tool_choice"u8))
        {
            return ref r.ToolChoice;
        }

        if (reader.ValueTextEquals("stop_sequences"u8))
        {
            return ref r.StopSequences;
        }

        if (reader.ValueTextEquals("temperature"u8))
        {
            return ref r.Temperature;
        }

        if (reader.ValueTextEquals("top_p"u8))
        {
            return ref r.TopP;
        }

        if (reader.ValueTextEquals("stream"u8))
        {
            return ref r.Stream;
        }

        if (reader.ValueTextEquals("metadata"u8))
        {
            return ref r.Metadata;
        }

        if (reader.ValueTextEquals("thinking"u8))
        {
            return ref r.Thinking;
        }

        return ref global::System.Runtime.CompilerServices.Unsafe.NullRef<JsonSlice>();
    }
}

/// <summary>An Anthropic input content block (request side).</summary>
internal struct AnthropicInputBlock
{
    public JsonSlice Type;
    public JsonSlice Text;
    public JsonSlice Id;
    public JsonSlice Name;
    public JsonSlice Input;
    public JsonSlice ToolUseId;
    public JsonSlice Content;
    public JsonSlice Source;
    public bool IsError;

    public static AnthropicInputBlock Read(ref Utf8JsonReader reader, int origin)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A content block must be an object.");
        }

        var block = default(AnthropicInputBlock);
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("type"u8))
            {
                block.Type = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("text"u8) || reader.ValueTextEquals("thinking"u8))
            {
                block.Text = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("id"u8))
            {
                block.Id = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("name"u8))
            {
                block.Name = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("input"u8))
            {
                block.Input = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("tool_use_id"u8))
            {
                block.ToolUseId = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("content"u8))
            {
                block.Content = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("source"u8))
            {
                block.Source = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("is_error"u8))
            {
                reader.Read();
                block.IsError = reader.TokenType == JsonTokenType.True;
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        return block;
    }

    public readonly bool Is(ReadOnlySpan<byte> document, ReadOnlySpan<byte> type) => JsonRead.StringEquals(document, Type, type);
}
