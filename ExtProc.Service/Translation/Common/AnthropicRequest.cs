using System.Text.Json;

namespace ExtProc.Translation.Common;

/// <summary>
/// Where the fields of an Anthropic Messages request are, found in one pass over the body: the top level
/// (repeated fields refused), each message and its content blocks (so writers walk them without reading
/// them again). Pooled: dispose it.
/// </summary>
internal struct AnthropicRequest : IDisposable
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

    // Every element of messages (and of their content arrays) in order; one that is not an object is kept
    // (as a default entry) so a writer refuses it when it gets there, as reading it there would.
    private PooledList<AnthropicMessage> _messages;
    private PooledList<AnthropicInputBlock> _blocks;

    public readonly int MessageCount => _messages.Count;

    /// <summary>The message at <paramref name="index"/>; check <see cref="AnthropicMessage.IsObject"/>.</summary>
    public readonly ref readonly AnthropicMessage Message(int index) => ref _messages[index];

    /// <summary>The content block at <paramref name="index"/> (from <see cref="AnthropicMessage.FirstBlock"/>); one that is not an object is refused here.</summary>
    public readonly ref readonly AnthropicInputBlock Block(int index)
    {
        ref readonly var block = ref _blocks[index];
        if (!block.IsObject)
        {
            throw new JsonException("A content block must be an object.");
        }

        return ref block;
    }

    public void Dispose()
    {
        _messages.Dispose();
        _blocks.Dispose();
    }

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

            slot = global::System.Runtime.CompilerServices.Unsafe.AreSame(ref slot, ref request.Messages)
                ? JsonRead.ObjectArray(ref reader, ref request._messages, ref request, static (ref r, ref owner) => owner.ReadMessage(ref r), out _, out _)
                : JsonRead.PropertyValue(ref reader, 0);
        }

        return request.Messages.Kind(document) != JsonTokenType.StartArray ? "The request needs a messages array." : null;
    }

    /// <summary>Reads the message object the reader is on (the reader over the whole body), recording a content array's blocks.</summary>
    private AnthropicMessage ReadMessage(ref Utf8JsonReader reader)
    {
        var message = new AnthropicMessage { IsObject = true };
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("role"u8))
            {
                message.Role = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("content"u8))
            {
                message.Content = JsonRead.ObjectArray(
                    ref reader, ref _blocks, ref this, static (ref r, ref _) => AnthropicInputBlock.Read(ref r, 0), out message.FirstBlock, out message.BlockCount);
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        return message;
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

/// <summary>One message of an Anthropic request; a content array's blocks are in the request's list.</summary>
internal struct AnthropicMessage
{
    public bool IsObject;
    public JsonSlice Role;
    public JsonSlice Content;
    public int FirstBlock;
    public int BlockCount;
}

/// <summary>An Anthropic input content block (request side).</summary>
internal struct AnthropicInputBlock
{
    public bool IsObject;
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

        var block = new AnthropicInputBlock { IsObject = true };
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
