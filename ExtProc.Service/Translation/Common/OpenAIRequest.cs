using System.Text.Json;

namespace ExtProc.Translation.Common;

internal enum OpenAIRole
{
    Unknown,
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

/// <summary>
/// Where the fields of an OpenAI Chat Completions request are, found in one pass over the body: the top
/// level and each message's fields (so writers walk the messages without reading them again). Duplicate
/// keys among the top-level fields we act on are refused (a second <c>model</c> must not slip past us).
/// Pooled: dispose it.
/// </summary>
internal struct OpenAIRequest : IDisposable
{
    public JsonSlice Model;
    public JsonSlice Messages;
    public JsonSlice Tools;
    public JsonSlice ToolChoice;
    public JsonSlice ParallelToolCalls;
    public JsonSlice MaxCompletionTokens;
    public JsonSlice MaxTokens;
    public JsonSlice Stop;
    public JsonSlice Temperature;
    public JsonSlice TopP;
    public JsonSlice N;
    public JsonSlice Stream;
    public JsonSlice StreamOptions;
    public JsonSlice ResponseFormat;
    public JsonSlice User;
    public JsonSlice SafetyIdentifier;
    public JsonSlice Seed;
    public JsonSlice PresencePenalty;
    public JsonSlice FrequencyPenalty;
    public JsonSlice Modalities;

    // Every element of messages (and of their tool_calls) in order; one that is not an object is kept (as
    // a default entry) so a writer refuses it when it gets there, as reading it there would.
    private PooledList<OpenAIMessage> _messages;
    private PooledList<OpenAIToolCall> _toolCalls;

    // Every property of every message in order, for a writer that copies what it does not change as it
    // came; only kept when asked for (the other writers do not need it).
    private PooledList<JsonField> _messageFields;
    private bool _keepMessageFields;

    // Every top-level property in order, for a writer that copies what it does not change as it came.
    private PooledList<JsonField> _fields;

    public readonly int MessageCount => _messages.Count;

    /// <summary>Reads the body; null on success, else why it is refused. <paramref name="keepMessageFields"/> records every message property.</summary>
    public static string? Read(ReadOnlySpan<byte> document, out OpenAIRequest request, bool keepMessageFields = false)
    {
        request = default;
        request._keepMessageFields = keepMessageFields;
        var reader = new Utf8JsonReader(document, JsonRead.Options);
        if (!JsonRead.EnterObject(ref reader))
        {
            return "The request body must be a JSON object.";
        }

        while (JsonRead.NextProperty(ref reader))
        {
            var name = new JsonSlice((int)reader.TokenStartIndex, reader.ValueSpan.Length + 2);
            var nameIsEscaped = reader.ValueIsEscaped;
            ref var slot = ref Slot(ref request, ref reader);
            JsonSlice value;
            if (System.Runtime.CompilerServices.Unsafe.IsNullRef(ref slot))
            {
                value = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (slot.IsPresent)
            {
                return "The request body repeats a field.";
            }
            else
            {
                value = slot = System.Runtime.CompilerServices.Unsafe.AreSame(ref slot, ref request.Messages)
                    ? JsonRead.ObjectArray(ref reader, ref request._messages, ref request, static (ref r, ref owner) => owner.ReadMessage(ref r), out _, out _)
                    : JsonRead.PropertyValue(ref reader, 0);
            }

            request._fields.Add(new JsonField(name, nameIsEscaped, value));
        }

        if (!request.Messages.IsPresent || request.Messages.Kind(document) != JsonTokenType.StartArray)
        {
            return "The request needs a messages array.";
        }

        return null;
    }

    /// <summary>The message at <paramref name="index"/>; a message that is not an object is refused here.</summary>
    public readonly ref readonly OpenAIMessage Message(int index)
    {
        ref readonly var message = ref _messages[index];
        if (!message.IsObject)
        {
            throw new JsonException("A message must be an object.");
        }

        return ref message;
    }

    /// <summary>The tool call at <paramref name="index"/> (from <see cref="OpenAIMessage.FirstToolCall"/>); one that is not an object is refused here.</summary>
    public readonly ref readonly OpenAIToolCall ToolCall(int index)
    {
        ref readonly var call = ref _toolCalls[index];
        if (!call.IsObject)
        {
            throw new JsonException("A tool call must be an object.");
        }

        return ref call;
    }

    public readonly int FieldCount => _fields.Count;

    public readonly ref readonly JsonField Field(int index) => ref _fields[index];

    /// <summary>A property of a message (from <see cref="OpenAIMessage.FirstField"/>).</summary>
    public readonly ref readonly JsonField MessageField(int index) => ref _messageFields[index];

    public void Dispose()
    {
        _messages.Dispose();
        _toolCalls.Dispose();
        _fields.Dispose();
        _messageFields.Dispose();
    }

    /// <summary>Reads the message object the reader is on (the reader over the whole body), recording its tool calls and properties.</summary>
    private OpenAIMessage ReadMessage(ref Utf8JsonReader reader)
    {
        var start = (int)reader.TokenStartIndex;
        var message = new OpenAIMessage { IsObject = true, FirstField = _messageFields.Count };
        while (JsonRead.NextProperty(ref reader))
        {
            var name = new JsonSlice((int)reader.TokenStartIndex, reader.ValueSpan.Length + 2);
            var nameIsEscaped = reader.ValueIsEscaped;
            JsonSlice value;
            if (reader.ValueTextEquals("role"u8))
            {
                reader.Read();
                message.Role = reader.ValueTextEquals("user"u8) ? OpenAIRole.User
                    : reader.ValueTextEquals("assistant"u8) ? OpenAIRole.Assistant
                    : reader.ValueTextEquals("tool"u8) ? OpenAIRole.Tool
                    : reader.ValueTextEquals("system"u8) ? OpenAIRole.System
                    : reader.ValueTextEquals("developer"u8) ? OpenAIRole.Developer
                    : OpenAIRole.Unknown;
                value = JsonRead.Value(ref reader, 0);
            }
            else if (reader.ValueTextEquals("content"u8))
            {
                value = message.Content = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("tool_calls"u8))
            {
                value = message.ToolCalls = JsonRead.ObjectArray(
                    ref reader, ref _toolCalls, ref this, static (ref r, ref _) => OpenAIToolCall.Read(ref r, 0), out message.FirstToolCall, out message.ToolCallCount);
            }
            else if (reader.ValueTextEquals("tool_call_id"u8))
            {
                value = message.ToolCallId = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("name"u8))
            {
                value = message.Name = JsonRead.PropertyValue(ref reader, 0);
            }
            else if (reader.ValueTextEquals("reasoning_content"u8))
            {
                value = message.ReasoningContent = JsonRead.PropertyValue(ref reader, 0);
            }
            else
            {
                value = JsonRead.PropertyValue(ref reader, 0);
            }

            if (_keepMessageFields)
            {
                _messageFields.Add(new JsonField(name, nameIsEscaped, value));
            }
        }

        message.Whole = new JsonSlice(start, (int)reader.BytesConsumed - start);
        message.FieldCount = _messageFields.Count - message.FirstField;
        return message;
    }

    public readonly bool IsStream(ReadOnlySpan<byte> document) => JsonRead.IsTrue(document, Stream);

    public readonly bool IncludeUsage(ReadOnlySpan<byte> document)
    {
        if (StreamOptions.Kind(document) != JsonTokenType.StartObject)
        {
            return false;
        }

        var reader = StreamOptions.Reader(document);
        reader.Read();
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("include_usage"u8))
            {
                reader.Read();
                return reader.TokenType == JsonTokenType.True;
            }

            JsonRead.SkipPropertyValue(ref reader);
        }

        return false;
    }

    /// <summary>The function name of <c>{"type":"function","function":{"name":…}}</c>.</summary>
    public static string? NamedToolChoice(ReadOnlySpan<byte> document, JsonSlice choice)
    {
        var reader = choice.Reader(document);
        reader.Read();
        while (JsonRead.NextProperty(ref reader))
        {
            if (!reader.ValueTextEquals("function"u8))
            {
                JsonRead.SkipPropertyValue(ref reader);
                continue;
            }

            reader.Read();
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }

            while (JsonRead.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("name"u8))
                {
                    reader.Read();
                    return reader.GetString();
                }

                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        return null;
    }

    private static ref JsonSlice Slot(ref OpenAIRequest r, ref Utf8JsonReader reader)
    {
        if (reader.ValueTextEquals("model"u8))
        {
            return ref r.Model;
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

        if (reader.ValueTextEquals("parallel_tool_calls"u8))
        {
            return ref r.ParallelToolCalls;
        }

        if (reader.ValueTextEquals("max_completion_tokens"u8))
        {
            return ref r.MaxCompletionTokens;
        }

        if (reader.ValueTextEquals("max_tokens"u8))
        {
            return ref r.MaxTokens;
        }

        if (reader.ValueTextEquals("stop"u8))
        {
            return ref r.Stop;
        }

        if (reader.ValueTextEquals("temperature"u8))
        {
            return ref r.Temperature;
        }

        if (reader.ValueTextEquals("top_p"u8))
        {
            return ref r.TopP;
        }

        if (reader.ValueTextEquals("n"u8))
        {
            return ref r.N;
        }

        if (reader.ValueTextEquals("stream"u8))
        {
            return ref r.Stream;
        }

        if (reader.ValueTextEquals("stream_options"u8))
        {
            return ref r.StreamOptions;
        }

        if (reader.ValueTextEquals("response_format"u8))
        {
            return ref r.ResponseFormat;
        }

        if (reader.ValueTextEquals("user"u8))
        {
            return ref r.User;
        }

        if (reader.ValueTextEquals("safety_identifier"u8))
        {
            return ref r.SafetyIdentifier;
        }

        if (reader.ValueTextEquals("seed"u8))
        {
            return ref r.Seed;
        }

        if (reader.ValueTextEquals("presence_penalty"u8))
        {
            return ref r.PresencePenalty;
        }

        if (reader.ValueTextEquals("frequency_penalty"u8))
        {
            return ref r.FrequencyPenalty;
        }

        if (reader.ValueTextEquals("modalities"u8))
        {
            return ref r.Modalities;
        }

        return ref System.Runtime.CompilerServices.Unsafe.NullRef<JsonSlice>();
    }
}

/// <summary>One message of an OpenAI request.</summary>
internal struct OpenAIMessage
{
    public bool IsObject;
    public OpenAIRole Role;
    public JsonSlice Whole;
    public JsonSlice Content;
    public JsonSlice ToolCalls;
    public JsonSlice ToolCallId;
    public JsonSlice Name;
    public JsonSlice ReasoningContent;

    /// <summary>Where this message's tool calls start in the request's list (<see cref="OpenAIRequest.ToolCall"/>).</summary>
    public int FirstToolCall;
    public int ToolCallCount;

    /// <summary>Where this message's properties start in the request's list (<see cref="OpenAIRequest.MessageField"/>).</summary>
    public int FirstField;
    public int FieldCount;
}

/// <summary>One content part of an OpenAI user/assistant/tool message.</summary>
internal struct OpenAIPart
{
    public JsonSlice Type;
    public JsonSlice Text;
    public JsonSlice ImageUrl;
    public JsonSlice FileData;
    public JsonSlice FileId;
    public bool IsAudio;
    public bool IsRefusal;

    public static OpenAIPart Read(ref Utf8JsonReader reader, int origin)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A content part must be an object.");
        }

        var part = default(OpenAIPart);
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                part.IsAudio = reader.ValueTextEquals("input_audio"u8);
                part.Type = JsonRead.Value(ref reader, origin);
            }
            else if (reader.ValueTextEquals("text"u8))
            {
                part.Text = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("refusal"u8))
            {
                part.IsRefusal = true;
                part.Text = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("image_url"u8) || reader.ValueTextEquals("file"u8))
            {
                var isImage = reader.ValueTextEquals("image_url"u8);
                reader.Read();
                if (reader.TokenType == JsonTokenType.String && isImage)
                {
                    part.ImageUrl = JsonRead.Value(ref reader, origin);
                    continue;
                }

                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (JsonRead.NextProperty(ref reader))
                {
                    if (isImage && reader.ValueTextEquals("url"u8))
                    {
                        part.ImageUrl = JsonRead.PropertyValue(ref reader, origin);
                    }
                    else if (!isImage && reader.ValueTextEquals("file_data"u8))
                    {
                        part.FileData = JsonRead.PropertyValue(ref reader, origin);
                    }
                    else if (!isImage && reader.ValueTextEquals("file_id"u8))
                    {
                        part.FileId = JsonRead.PropertyValue(ref reader, origin);
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

        return part;
    }
}

/// <summary>One <c>tool_calls[]</c> entry of an assistant message.</summary>
internal struct OpenAIToolCall
{
    public bool IsObject;
    public JsonSlice Id;
    public JsonSlice Name;
    public JsonSlice Arguments;
    public JsonSlice ThoughtSignature;

    public static OpenAIToolCall Read(ref Utf8JsonReader reader, int origin)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A tool call must be an object.");
        }

        var call = new OpenAIToolCall { IsObject = true };
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("id"u8))
            {
                call.Id = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("function"u8))
            {
                (call.Name, call.Arguments) = OpenAIFunctionCall.Read(ref reader, origin);
            }
            else if (reader.ValueTextEquals("extra_content"u8))
            {
                // Gemini's OpenAI convention: extra_content.google.thought_signature.
                call.ThoughtSignature = FindThoughtSignature(ref reader, origin);
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        return call;
    }

    private static JsonSlice FindThoughtSignature(ref Utf8JsonReader reader, int origin)
    {
        var found = default(JsonSlice);
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return found;
        }

        while (JsonRead.NextProperty(ref reader))
        {
            if (!reader.ValueTextEquals("google"u8))
            {
                JsonRead.SkipPropertyValue(ref reader);
                continue;
            }

            reader.Read();
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }

            while (JsonRead.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("thought_signature"u8))
                {
                    found = JsonRead.PropertyValue(ref reader, origin);
                }
                else
                {
                    JsonRead.SkipPropertyValue(ref reader);
                }
            }
        }

        return found;
    }
}

/// <summary>A tool call's <c>function</c> value (the reader on its property name, left on its end): where its name and arguments are.</summary>
internal static class OpenAIFunctionCall
{
    public static (JsonSlice Name, JsonSlice Arguments) Read(ref Utf8JsonReader reader, int origin)
    {
        JsonSlice name = default, arguments = default;
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return (name, arguments);
        }

        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("name"u8))
            {
                name = JsonRead.PropertyValue(ref reader, origin);
            }
            else if (reader.ValueTextEquals("arguments"u8))
            {
                arguments = JsonRead.PropertyValue(ref reader, origin);
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        return (name, arguments);
    }
}
