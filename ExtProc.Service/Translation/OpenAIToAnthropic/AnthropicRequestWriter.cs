using System.Buffers;
using System.Text.Json;
using ExtProc.Protocols;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToAnthropic;

/// <summary>Writes the Anthropic Messages request for an OpenAI Chat Completions request (providers.md §6.1).</summary>
internal static class AnthropicRequestWriter
{
    private enum Turn
    {
        None,
        User,
        Assistant,
    }

    /// <summary>Null on success, else why the request cannot be carried to Anthropic.</summary>
    public static string? Write(ReadOnlySpan<byte> document, in OpenAIRequest request, TranslationState state, int defaultMaxTokens, IBufferWriter<byte> output)
    {
        if (JsonRead.TryGetLong(document, request.N, out var n) && n > 1)
        {
            return "Anthropic returns one choice per request; n must be 1.";
        }

        var writer = JsonOut.Writer(output);
        writer.WriteStartObject();
        writer.WriteString("model"u8, state.UpstreamModel);

        // Anthropic requires max_tokens; 0 would mean "pre-warm the cache", so an absent limit gets the default.
        var maxTokens = request.MaxCompletionTokens.IsPresent ? request.MaxCompletionTokens : request.MaxTokens;
        if (JsonRead.TryGetLong(document, maxTokens, out var limit) && limit > 0)
        {
            writer.WriteNumber("max_tokens"u8, limit);
        }
        else
        {
            writer.WriteNumber("max_tokens"u8, defaultMaxTokens);
        }

        WriteSystem(writer, document, request);
        if (WriteMessages(writer, document, request, state) is { } refused)
        {
            return refused;
        }

        if (request.Tools.Kind(document) == JsonTokenType.StartArray && WriteTools(writer, document, request.Tools, state) is { } badTool)
        {
            return badTool;
        }

        WriteToolChoice(writer, document, request);
        WriteStop(writer, document, request.Stop);
        if (JsonRead.TryGetDouble(document, request.Temperature, out var temperature))
        {
            // OpenAI's range is 0–2, Anthropic's 0–1.
            writer.WriteNumber("temperature"u8, Math.Min(temperature, 1.0));
        }

        if (request.TopP.Kind(document) == JsonTokenType.Number)
        {
            JsonOut.Raw(writer, "top_p"u8, document, request.TopP);
        }

        if (state.Stream)
        {
            writer.WriteBoolean("stream"u8, true);
        }

        var user = request.SafetyIdentifier.Kind(document) == JsonTokenType.String ? request.SafetyIdentifier : request.User;
        if (user.Kind(document) == JsonTokenType.String)
        {
            writer.WriteStartObject("metadata"u8);
            JsonOut.Raw(writer, "user_id"u8, document, user);
            writer.WriteEndObject();
        }

        WriteResponseFormat(writer, document, request.ResponseFormat);
        writer.WriteEndObject();
        writer.Flush();
        return null;
    }

    private static void WriteSystem(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in OpenAIRequest request)
    {
        var started = false;
        for (var i = 0; i < request.MessageCount; i++)
        {
            ref readonly var message = ref request.Message(i);
            if (message.Role is not (OpenAIRole.System or OpenAIRole.Developer))
            {
                continue;
            }

            if (!started)
            {
                writer.WriteStartArray("system"u8);
                started = true;
            }

            OpenAIText.WriteAll(writer, document, message.Content, typed: true);
        }

        if (started)
        {
            writer.WriteEndArray();
        }
    }

    private static string? WriteMessages(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in OpenAIRequest request, TranslationState state)
    {
        writer.WriteStartArray("messages"u8);
        var turn = Turn.None;
        for (var i = 0; i < request.MessageCount; i++)
        {
            ref readonly var message = ref request.Message(i);
            switch (message.Role)
            {
                case OpenAIRole.System or OpenAIRole.Developer:
                    break;
                case OpenAIRole.User:
                    if (WriteUserContent(writer, document, message.Content, ref turn) is { } refused)
                    {
                        return refused;
                    }

                    break;
                case OpenAIRole.Tool:
                    Open(writer, ref turn, Turn.User);
                    WriteToolResult(writer, document, message, state);
                    break;
                case OpenAIRole.Assistant:
                    WriteAssistant(writer, document, request, message, ref turn);
                    break;
                default:
                    return "A message has a role Anthropic cannot carry.";
            }
        }

        if (turn != Turn.None)
        {
            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        return null;
    }

    /// <summary>Consecutive messages of one side become one Anthropic turn (tool results plus the next user text).</summary>
    private static void Open(Utf8JsonWriter writer, ref Turn turn, Turn wanted)
    {
        if (turn == wanted)
        {
            return;
        }

        if (turn != Turn.None)
        {
            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        writer.WriteStartObject();
        writer.WriteString(JsonNames.Role, wanted == Turn.User ? JsonNames.User : JsonNames.Assistant);
        writer.WriteStartArray(JsonNames.Content);
        turn = wanted;
    }

    private static string? WriteUserContent(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice content, ref Turn turn)
    {
        if (content.Kind(document) == JsonTokenType.String)
        {
            if (content.Length > 2)
            {
                Open(writer, ref turn, Turn.User);
                OpenAIText.WriteOne(writer, document, content, typed: true);
            }

            return null;
        }

        if (content.Kind(document) != JsonTokenType.StartArray)
        {
            return null;
        }

        var reader = content.Reader(document);
        reader.Read();
        while (JsonRead.NextElement(ref reader))
        {
            var part = OpenAIPart.Read(ref reader, content.Start);
            if (part.IsAudio)
            {
                return "Anthropic does not take audio input.";
            }

            if (part.Text.IsPresent)
            {
                if (part.Text.Length > 2)
                {
                    Open(writer, ref turn, Turn.User);
                    OpenAIText.WriteOne(writer, document, part.Text, typed: true);
                }
            }
            else if (part.ImageUrl.IsPresent || part.FileData.IsPresent)
            {
                Open(writer, ref turn, Turn.User);
                if (WriteMedia(writer, document, part.ImageUrl.IsPresent ? part.ImageUrl : part.FileData) is { } refused)
                {
                    return refused;
                }
            }
            else if (part.FileId.IsPresent)
            {
                return "File ids belong to the OpenAI Files API; Anthropic cannot read them.";
            }
        }

        return null;
    }

    /// <summary>An image or PDF (data URI or https URL) as an Anthropic image/document block.</summary>
    private static string? WriteMedia(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice urlSlice)
    {
        var reader = urlSlice.Reader(document);
        reader.Read();
        var url = new TextBuffer();
        try
        {
            url.Append(ref reader);
            if (DataUri.TryParse(url.Span, out var mediaType, out var data))
            {
                var isPdf = mediaType.SequenceEqual("application/pdf"u8);
                if (!isPdf && !DataUri.IsAnthropicImage(mediaType))
                {
                    return "Anthropic takes jpeg, png, gif and webp images and PDF documents only.";
                }

                writer.WriteStartObject();
                writer.WriteString("type"u8, isPdf ? "document"u8 : "image"u8);
                writer.WriteStartObject("source"u8);
                writer.WriteString("type"u8, "base64"u8);
                writer.WriteString("media_type"u8, mediaType);
                writer.WriteString("data"u8, data);
                writer.WriteEndObject();
                writer.WriteEndObject();
                return null;
            }

            if (!url.Span.StartsWith("https://"u8) && !url.Span.StartsWith("http://"u8))
            {
                return "An image must be a data URI or an http(s) URL.";
            }

            writer.WriteStartObject();
            writer.WriteString("type"u8, DataUri.GuessMediaType(url.Span).SequenceEqual("application/pdf"u8) ? "document"u8 : "image"u8);
            writer.WriteStartObject("source"u8);
            writer.WriteString("type"u8, "url"u8);
            writer.WriteString("url"u8, url.Span);
            writer.WriteEndObject();
            writer.WriteEndObject();
            return null;
        }
        finally
        {
            url.Dispose();
        }
    }

    private static void WriteToolResult(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in OpenAIMessage message, TranslationState state)
    {
        writer.WriteStartObject();
        writer.WriteString(JsonNames.Type, JsonNames.ToolResult);
        ToolNaming.WriteToolCallId(writer, JsonNames.ToolUseId, document, message.ToolCallId, ProtocolKind.AnthropicMessages, state.Dialect);
        if (message.Content.Kind(document) == JsonTokenType.String)
        {
            JsonOut.Raw(writer, JsonNames.Content, document, message.Content);
        }
        else if (message.Content.Kind(document) == JsonTokenType.StartArray)
        {
            writer.WriteStartArray("content"u8);
            OpenAIText.WriteAll(writer, document, message.Content, typed: true);
            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }

    private static void WriteAssistant(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in OpenAIRequest request, in OpenAIMessage message, ref Turn turn)
    {
        if (message.Content.Kind(document) == JsonTokenType.String && message.Content.Length > 2)
        {
            Open(writer, ref turn, Turn.Assistant);
            OpenAIText.WriteOne(writer, document, message.Content, typed: true);
        }
        else if (message.Content.Kind(document) == JsonTokenType.StartArray)
        {
            // Text and refusal parts are both assistant text to Anthropic.
            var parts = message.Content.Reader(document);
            parts.Read();
            while (JsonRead.NextElement(ref parts))
            {
                var part = OpenAIPart.Read(ref parts, message.Content.Start);
                if (part.Text.Kind(document) == JsonTokenType.String && part.Text.Length > 2)
                {
                    Open(writer, ref turn, Turn.Assistant);
                    OpenAIText.WriteOne(writer, document, part.Text, typed: true);
                }
            }
        }

        for (var i = 0; i < message.ToolCallCount; i++)
        {
            ref readonly var call = ref request.ToolCall(message.FirstToolCall + i);
            Open(writer, ref turn, Turn.Assistant);
            writer.WriteStartObject();
            writer.WriteString(JsonNames.Type, JsonNames.ToolUse);
            ToolNaming.WriteToolCallId(writer, JsonNames.Id, document, call.Id, ProtocolKind.AnthropicMessages, UpstreamDialect.Standard);
            ToolNaming.WriteToolName(writer, JsonNames.Name, document, call.Name, ProtocolKind.AnthropicMessages);
            writer.WritePropertyName(JsonNames.Input);
            JsonOut.ArgumentsAsObject(writer, document, call.Arguments);
            writer.WriteEndObject();
        }
    }

    private static string? WriteTools(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice tools, TranslationState state)
    {
        var reader = tools.Reader(document);
        reader.Read();
        var started = false;
        while (JsonRead.NextElement(ref reader))
        {
            if (OpenAIFunctionTool.Read(ref reader, document, tools.Start, ProtocolKind.AnthropicMessages, state, out var tool) is { } error)
            {
                return error;
            }

            if (!started)
            {
                writer.WriteStartArray("tools"u8);
                started = true;
            }

            writer.WriteStartObject();
            writer.WriteString("name"u8, tool.UpstreamName);
            if (tool.Description.Kind(document) == JsonTokenType.String)
            {
                JsonOut.Raw(writer, "description"u8, document, tool.Description);
            }

            // The schema is carried as-is (rebuilding it loses keywords).
            if (tool.Parameters.Kind(document) == JsonTokenType.StartObject)
            {
                JsonOut.Raw(writer, "input_schema"u8, document, tool.Parameters);
            }
            else
            {
                writer.WriteStartObject("input_schema"u8);
                writer.WriteString("type"u8, "object"u8);
                writer.WriteEndObject();
            }

            if (JsonRead.IsTrue(document, tool.Strict))
            {
                writer.WriteBoolean("strict"u8, true);
            }

            writer.WriteEndObject();
        }

        if (started)
        {
            writer.WriteEndArray();
        }

        return null;
    }

    private static void WriteToolChoice(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in OpenAIRequest request)
    {
        var noParallel = request.ParallelToolCalls.Kind(document) == JsonTokenType.False;
        var choice = request.ToolChoice;
        if (!choice.IsPresent || choice.Kind(document) == JsonTokenType.Null)
        {
            if (noParallel && request.Tools.Kind(document) == JsonTokenType.StartArray)
            {
                // The flag must not be lost when tool_choice is absent.
                writer.WriteStartObject("tool_choice"u8);
                writer.WriteString("type"u8, "auto"u8);
                writer.WriteBoolean("disable_parallel_tool_use"u8, true);
                writer.WriteEndObject();
            }

            return;
        }

        writer.WriteStartObject("tool_choice"u8);
        if (choice.Kind(document) == JsonTokenType.String)
        {
            var type = JsonRead.StringEquals(document, choice, "none"u8) ? "none"u8
                : JsonRead.StringEquals(document, choice, "required"u8) ? "any"u8
                : "auto"u8;
            writer.WriteString("type"u8, type);
            noParallel &= !type.SequenceEqual("none"u8);
        }
        else
        {
            var name = OpenAIRequest.NamedToolChoice(document, choice);
            writer.WriteString("type"u8, "tool"u8);
            writer.WriteString("name"u8, ToolNaming.UpstreamToolName(name ?? string.Empty, ProtocolKind.AnthropicMessages));
        }

        if (noParallel)
        {
            writer.WriteBoolean("disable_parallel_tool_use"u8, true);
        }

        writer.WriteEndObject();
    }

    /// <summary>A string or array of stop sequences; whitespace-only ones are dropped (Anthropic refuses them).</summary>
    private static void WriteStop(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice stop)
    {
        var kind = stop.Kind(document);
        if (kind is not (JsonTokenType.String or JsonTokenType.StartArray))
        {
            return;
        }

        var started = false;
        var reader = stop.Reader(document);
        reader.Read();
        var single = kind == JsonTokenType.String;
        while (single || JsonRead.NextElement(ref reader))
        {
            if (reader.TokenType == JsonTokenType.String)
            {
                var value = reader.GetString()!;
                if (!string.IsNullOrWhiteSpace(value))
                {
                    if (!started)
                    {
                        writer.WriteStartArray("stop_sequences"u8);
                        started = true;
                    }

                    writer.WriteStringValue(value);
                }
            }

            if (single)
            {
                break;
            }
        }

        if (started)
        {
            writer.WriteEndArray();
        }
    }

    /// <summary><c>response_format: json_schema</c> → <c>output_config.format</c> (structured outputs).</summary>
    private static void WriteResponseFormat(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice format)
    {
        if (format.Kind(document) != JsonTokenType.StartObject)
        {
            return;
        }

        var reader = format.Reader(document);
        reader.Read();
        JsonSlice schema = default;
        var isSchema = false;
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                isSchema = reader.ValueTextEquals("json_schema"u8);
            }
            else if (reader.ValueTextEquals("json_schema"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (JsonRead.NextProperty(ref reader))
                {
                    if (reader.ValueTextEquals("schema"u8))
                    {
                        schema = JsonRead.PropertyValue(ref reader, format.Start);
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

        if (isSchema && schema.Kind(document) == JsonTokenType.StartObject)
        {
            writer.WriteStartObject("output_config"u8);
            writer.WriteStartObject("format"u8);
            writer.WriteString("type"u8, "json_schema"u8);
            JsonOut.Raw(writer, "schema"u8, document, schema);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }
    }
}
