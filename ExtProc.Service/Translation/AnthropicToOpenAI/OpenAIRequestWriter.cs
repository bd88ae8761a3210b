using System.Buffers;
using System.Text.Json;
using ExtProc.Protocols;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.AnthropicToOpenAI;

/// <summary>Writes the OpenAI Chat Completions request for an Anthropic Messages request (providers.md §6.4), with the target dialect's rules.</summary>
internal static class OpenAIRequestWriter
{
    // Mistral refuses a user message straight after a tool message; a short assistant turn bridges them.
    private static ReadOnlySpan<byte> MistralBridge => "Done."u8;

    public static string? Write(ReadOnlySpan<byte> document, in AnthropicRequest request, TranslationState state, IBufferWriter<byte> output)
    {
        var dialect = state.Dialect;
        var writer = JsonOut.Writer(output);
        writer.WriteStartObject();
        writer.WriteString("model"u8, state.UpstreamModel);
        writer.WriteStartArray("messages"u8);
        WriteSystem(writer, document, request.System);
        if (WriteMessages(writer, document, request, dialect) is { } refused)
        {
            return refused;
        }

        writer.WriteEndArray();
        if (request.MaxTokens.Kind(document) == JsonTokenType.Number)
        {
            var field = dialect is UpstreamDialect.Standard or UpstreamDialect.Azure ? "max_completion_tokens"u8 : "max_tokens"u8;
            JsonOut.Raw(writer, field, document, request.MaxTokens);
        }

        if (request.Tools.Kind(document) == JsonTokenType.StartArray && WriteTools(writer, document, request.Tools, state) is { } badTool)
        {
            return badTool;
        }

        WriteToolChoice(writer, document, request.ToolChoice, dialect);
        if (request.StopSequences.Kind(document) == JsonTokenType.StartArray)
        {
            JsonOut.Raw(writer, "stop"u8, document, request.StopSequences);
        }

        if (request.Temperature.Kind(document) == JsonTokenType.Number)
        {
            JsonOut.Raw(writer, "temperature"u8, document, request.Temperature);
        }

        if (request.TopP.Kind(document) == JsonTokenType.Number)
        {
            JsonOut.Raw(writer, "top_p"u8, document, request.TopP);
        }

        if (state.Stream)
        {
            // Usage only comes in an OpenAI stream when asked for; message_delta needs it.
            writer.WriteBoolean("stream"u8, true);
            writer.WriteStartObject("stream_options"u8);
            writer.WriteBoolean("include_usage"u8, true);
            writer.WriteEndObject();
        }

        if (dialect != UpstreamDialect.Mistral && UserId(document, request.Metadata) is { IsPresent: true } user)
        {
            JsonOut.Raw(writer, "user"u8, document, user);
        }

        WriteThinking(writer, document, request.Thinking, dialect);
        writer.WriteEndObject();
        writer.Flush();
        return null;
    }

    private static void WriteSystem(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice system)
    {
        var kind = system.Kind(document);
        if (kind == JsonTokenType.String)
        {
            writer.WriteStartObject();
            writer.WriteString("role"u8, "system"u8);
            JsonOut.Raw(writer, "content"u8, document, system);
            writer.WriteEndObject();
        }
        else if (kind == JsonTokenType.StartArray)
        {
            var text = new TextBuffer();
            try
            {
                AppendTexts(ref text, document, system, separator: "\n"u8);
                writer.WriteStartObject();
                writer.WriteString("role"u8, "system"u8);
                writer.WriteString("content"u8, text.Span);
                writer.WriteEndObject();
            }
            finally
            {
                text.Dispose();
            }
        }
    }

    /// <summary>Concatenates the text blocks of a block array (unescaped).</summary>
    private static void AppendTexts(ref TextBuffer text, ReadOnlySpan<byte> document, JsonSlice blocks, ReadOnlySpan<byte> separator)
    {
        var reader = blocks.Reader(document);
        reader.Read();
        var first = true;
        while (JsonRead.NextElement(ref reader))
        {
            var block = AnthropicInputBlock.Read(ref reader, blocks.Start);
            if (!block.Is(document, "text"u8) || block.Text.Kind(document) != JsonTokenType.String)
            {
                continue;
            }

            if (!first)
            {
                text.Append(separator);
            }

            first = false;
            var value = block.Text.Reader(document);
            value.Read();
            text.Append(ref value);
        }
    }

    private static string? WriteMessages(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in AnthropicRequest request, UpstreamDialect dialect)
    {
        var lastWasTool = false;
        for (var i = 0; i < request.MessageCount; i++)
        {
            ref readonly var message = ref request.Message(i);
            if (!message.IsObject)
            {
                return "Each message must be an object.";
            }

            var role = message.Role;
            var content = message.Content;
            if (JsonRead.StringEquals(document, role, "assistant"u8))
            {
                WriteAssistant(writer, document, request, message, dialect);
                lastWasTool = false;
            }
            else if (JsonRead.StringEquals(document, role, "user"u8))
            {
                if (WriteUser(writer, document, request, message, dialect, ref lastWasTool) is { } refused)
                {
                    return refused;
                }
            }
            else if (JsonRead.StringEquals(document, role, "system"u8))
            {
                WriteSystem(writer, document, content); // Claude Code's mid-conversation system messages
            }
            else
            {
                return "A message has a role the upstream cannot carry.";
            }
        }

        return null;
    }

    /// <summary>tool_result blocks become tool messages first (they must follow the assistant's tool_calls), then the rest as one user message.</summary>
    private static string? WriteUser(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in AnthropicRequest request, in AnthropicMessage message, UpstreamDialect dialect, ref bool lastWasTool)
    {
        var content = message.Content;
        if (content.Kind(document) == JsonTokenType.String)
        {
            Bridge(writer, dialect, ref lastWasTool);
            writer.WriteStartObject();
            writer.WriteString(JsonNames.Role, JsonNames.User);
            JsonOut.Raw(writer, JsonNames.Content, document, content);
            writer.WriteEndObject();
            return null;
        }

        if (content.Kind(document) != JsonTokenType.StartArray)
        {
            return "A message needs content.";
        }

        var others = 0;
        for (var i = 0; i < message.BlockCount; i++)
        {
            ref readonly var block = ref request.Block(message.FirstBlock + i);
            if (block.Is(document, "tool_result"u8))
            {
                WriteToolMessage(writer, document, block, dialect);
                lastWasTool = true;
            }
            else if (block.Is(document, "text"u8) || block.Is(document, "image"u8) || block.Is(document, "document"u8))
            {
                others++;
            }
            else
            {
                return "A content block type cannot be carried to the upstream.";
            }
        }

        if (others == 0)
        {
            return null;
        }

        Bridge(writer, dialect, ref lastWasTool);
        writer.WriteStartObject();
        writer.WriteString(JsonNames.Role, JsonNames.User);
        writer.WriteStartArray(JsonNames.Content);
        for (var i = 0; i < message.BlockCount; i++)
        {
            ref readonly var block = ref request.Block(message.FirstBlock + i);
            if (block.Is(document, "text"u8))
            {
                writer.WriteStartObject();
                writer.WriteString(JsonNames.Type, JsonNames.Text);
                JsonOut.Raw(writer, JsonNames.Text, document, block.Text);
                writer.WriteEndObject();
            }
            else if ((block.Is(document, "image"u8) || block.Is(document, "document"u8))
                && WriteMedia(writer, document, block) is { } refused)
            {
                return refused;
            }
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
        return null;
    }

    private static void Bridge(Utf8JsonWriter writer, UpstreamDialect dialect, ref bool lastWasTool)
    {
        if (lastWasTool && dialect == UpstreamDialect.Mistral)
        {
            writer.WriteStartObject();
            writer.WriteString(JsonNames.Role, JsonNames.Assistant);
            writer.WriteString("content"u8, MistralBridge);
            writer.WriteEndObject();
        }

        lastWasTool = false;
    }

    private static string? WriteMedia(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in AnthropicInputBlock block)
    {
        JsonSlice type = default, mediaType = default, data = default, url = default;
        if (block.Source.Kind(document) == JsonTokenType.StartObject)
        {
            var reader = block.Source.Reader(document);
            reader.Read();
            while (JsonRead.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    type = JsonRead.PropertyValue(ref reader, block.Source.Start);
                }
                else if (reader.ValueTextEquals("media_type"u8))
                {
                    mediaType = JsonRead.PropertyValue(ref reader, block.Source.Start);
                }
                else if (reader.ValueTextEquals("data"u8))
                {
                    data = JsonRead.PropertyValue(ref reader, block.Source.Start);
                }
                else if (reader.ValueTextEquals("url"u8))
                {
                    url = JsonRead.PropertyValue(ref reader, block.Source.Start);
                }
                else
                {
                    JsonRead.SkipPropertyValue(ref reader);
                }
            }
        }

        var isImage = block.Is(document, "image"u8);
        var uri = new TextBuffer();
        try
        {
            if (JsonRead.StringEquals(document, type, "base64"u8) && mediaType.IsPresent && data.IsPresent)
            {
                using var media = new ScratchString(document, mediaType);
                using var bytes = new ScratchString(document, data);
                uri.Append("data:"u8);
                uri.Append(media.Span);
                uri.Append(";base64,"u8);
                uri.Append(bytes.Span);
            }
            else if (JsonRead.StringEquals(document, type, "url"u8) && isImage && url.IsPresent)
            {
                using var link = new ScratchString(document, url);
                uri.Append(link.Span);
            }
            else
            {
                return "Only base64 or URL images and base64 PDF documents can be carried to the upstream.";
            }

            writer.WriteStartObject();
            if (isImage)
            {
                writer.WriteString("type"u8, "image_url"u8);
                writer.WriteStartObject("image_url"u8);
                writer.WriteString("url"u8, uri.Span);
            }
            else
            {
                writer.WriteString("type"u8, "file"u8);
                writer.WriteStartObject("file"u8);
                writer.WriteString("file_data"u8, uri.Span);
            }

            writer.WriteEndObject();
            writer.WriteEndObject();
            return null;
        }
        finally
        {
            uri.Dispose();
        }
    }

    private static void WriteToolMessage(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in AnthropicInputBlock block, UpstreamDialect dialect)
    {
        writer.WriteStartObject();
        writer.WriteString(JsonNames.Role, JsonNames.Tool);
        ToolNaming.WriteToolCallId(writer, JsonNames.ToolCallId, document, block.ToolUseId, ProtocolKind.OpenAiChat, dialect);
        var text = new TextBuffer();
        try
        {
            if (block.IsError)
            {
                text.Append("Error: "u8); // OpenAI tool messages have no error flag
            }

            if (block.Content.Kind(document) == JsonTokenType.String)
            {
                var reader = block.Content.Reader(document);
                reader.Read();
                text.Append(ref reader);
            }
            else if (block.Content.Kind(document) == JsonTokenType.StartArray)
            {
                AppendTexts(ref text, document, block.Content, separator: "\n"u8);
            }

            writer.WriteString(JsonNames.Content, text.Span);
        }
        finally
        {
            text.Dispose();
        }

        writer.WriteEndObject();
    }

    private static void WriteAssistant(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in AnthropicRequest request, in AnthropicMessage message, UpstreamDialect dialect)
    {
        var content = message.Content;
        writer.WriteStartObject();
        writer.WriteString(JsonNames.Role, JsonNames.Assistant);
        if (content.Kind(document) == JsonTokenType.String)
        {
            JsonOut.Raw(writer, JsonNames.Content, document, content);
            writer.WriteEndObject();
            return;
        }

        var text = new TextBuffer();
        var thinking = new TextBuffer();
        try
        {
            if (content.Kind(document) != JsonTokenType.StartArray)
            {
                throw new JsonException("An assistant message needs string or array content.");
            }

            var toolCalls = 0;
            for (var i = 0; i < message.BlockCount; i++)
            {
                ref readonly var block = ref request.Block(message.FirstBlock + i);
                if (block.Text.Kind(document) == JsonTokenType.String && (block.Is(document, "text"u8) || block.Is(document, "thinking"u8)))
                {
                    var value = block.Text.Reader(document);
                    value.Read();
                    if (block.Is(document, "text"u8))
                    {
                        text.Append(ref value);
                    }
                    else
                    {
                        thinking.Append(ref value);
                    }
                }
                else if (block.Is(document, "tool_use"u8))
                {
                    toolCalls++;
                }
            }

            if (text.Length > 0)
            {
                writer.WriteString(JsonNames.Content, text.Span);
            }
            else if (dialect != UpstreamDialect.Mistral)
            {
                writer.WriteNull(JsonNames.Content); // Mistral refuses null fields; everyone else expects the key
            }

            // DeepSeek's thinking mode wants the reasoning of a tool-calling turn back.
            if (dialect == UpstreamDialect.DeepSeek && toolCalls > 0)
            {
                writer.WriteString("reasoning_content"u8, thinking.Span);
            }

            if (toolCalls > 0)
            {
                WriteToolCalls(writer, document, request, message, dialect);
            }
        }
        finally
        {
            text.Dispose();
            thinking.Dispose();
        }

        writer.WriteEndObject();
    }

    private static void WriteToolCalls(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in AnthropicRequest request, in AnthropicMessage message, UpstreamDialect dialect)
    {
        writer.WriteStartArray(JsonNames.ToolCalls);
        for (var i = 0; i < message.BlockCount; i++)
        {
            ref readonly var block = ref request.Block(message.FirstBlock + i);
            if (!block.Is(document, "tool_use"u8))
            {
                continue;
            }

            writer.WriteStartObject();
            ToolNaming.WriteToolCallId(writer, JsonNames.Id, document, block.Id, ProtocolKind.OpenAiChat, dialect);
            writer.WriteString(JsonNames.Type, JsonNames.Function);
            writer.WriteStartObject(JsonNames.Function);
            ToolNaming.WriteToolName(writer, JsonNames.Name, document, block.Name, ProtocolKind.OpenAiChat);
            JsonOut.ObjectAsArgumentsProperty(writer, document, block.Input);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    private static string? WriteTools(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice tools, TranslationState state)
    {
        writer.WriteStartArray("tools"u8);
        var reader = tools.Reader(document);
        reader.Read();
        while (JsonRead.NextElement(ref reader))
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return "Each tool must be an object.";
            }

            JsonSlice type = default, name = default, description = default, schema = default;
            while (JsonRead.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    type = JsonRead.PropertyValue(ref reader, tools.Start);
                }
                else if (reader.ValueTextEquals("name"u8))
                {
                    name = JsonRead.PropertyValue(ref reader, tools.Start);
                }
                else if (reader.ValueTextEquals("description"u8))
                {
                    description = JsonRead.PropertyValue(ref reader, tools.Start);
                }
                else if (reader.ValueTextEquals("input_schema"u8))
                {
                    schema = JsonRead.PropertyValue(ref reader, tools.Start);
                }
                else
                {
                    JsonRead.SkipPropertyValue(ref reader);
                }
            }

            // No type (Claude Code) or "custom" is a client tool; versioned server tools run at Anthropic only.
            if (type.IsPresent && !JsonRead.StringEquals(document, type, "custom"u8))
            {
                return "Anthropic server tools cannot be carried to an OpenAI-format upstream.";
            }

            var clientName = JsonRead.GetString(document, name);
            if (string.IsNullOrEmpty(clientName))
            {
                return "A tool needs a name.";
            }

            var upstreamName = ToolNaming.UpstreamToolName(clientName, ProtocolKind.OpenAiChat);
            if (!string.Equals(upstreamName, clientName, StringComparison.Ordinal))
            {
                state.AddRename(upstreamName, clientName);
            }

            writer.WriteStartObject();
            writer.WriteString("type"u8, "function"u8);
            writer.WriteStartObject("function"u8);
            writer.WriteString("name"u8, upstreamName);
            if (description.Kind(document) == JsonTokenType.String)
            {
                JsonOut.Raw(writer, "description"u8, document, description);
            }

            if (schema.Kind(document) == JsonTokenType.StartObject)
            {
                JsonOut.Raw(writer, "parameters"u8, document, schema);
            }

            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        return null;
    }

    private static void WriteToolChoice(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice choice, UpstreamDialect dialect)
    {
        if (choice.Kind(document) != JsonTokenType.StartObject)
        {
            return;
        }

        JsonSlice type = default, name = default;
        var noParallel = false;
        var reader = choice.Reader(document);
        reader.Read();
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("type"u8))
            {
                type = JsonRead.PropertyValue(ref reader, choice.Start);
            }
            else if (reader.ValueTextEquals("name"u8))
            {
                name = JsonRead.PropertyValue(ref reader, choice.Start);
            }
            else if (reader.ValueTextEquals("disable_parallel_tool_use"u8))
            {
                reader.Read();
                noParallel = reader.TokenType == JsonTokenType.True;
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        if (JsonRead.StringEquals(document, type, "tool"u8))
        {
            writer.WriteStartObject("tool_choice"u8);
            writer.WriteString("type"u8, "function"u8);
            writer.WriteStartObject("function"u8);
            writer.WriteString("name"u8, ToolNaming.UpstreamToolName(JsonRead.GetString(document, name) ?? string.Empty, ProtocolKind.OpenAiChat));
            writer.WriteEndObject();
            writer.WriteEndObject();
        }
        else if (JsonRead.StringEquals(document, type, "any"u8))
        {
            writer.WriteString("tool_choice"u8, dialect == UpstreamDialect.Mistral ? "any"u8 : "required"u8);
        }
        else if (JsonRead.StringEquals(document, type, "none"u8))
        {
            writer.WriteString("tool_choice"u8, "none"u8);
        }
        else
        {
            writer.WriteString("tool_choice"u8, "auto"u8);
        }

        if (noParallel)
        {
            writer.WriteBoolean("parallel_tool_calls"u8, false);
        }
    }

    private static JsonSlice UserId(ReadOnlySpan<byte> document, JsonSlice metadata)
    {
        if (metadata.Kind(document) != JsonTokenType.StartObject)
        {
            return default;
        }

        var reader = metadata.Reader(document);
        reader.Read();
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("user_id"u8))
            {
                var value = JsonRead.PropertyValue(ref reader, metadata.Start);
                return value.Kind(document) == JsonTokenType.String ? value : default;
            }

            JsonRead.SkipPropertyValue(ref reader);
        }

        return default;
    }

    /// <summary>Extended thinking → the dialect's switch (DeepSeek <c>thinking</c>, Qwen <c>enable_thinking</c>); others have no safe peer.</summary>
    private static void WriteThinking(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice thinking, UpstreamDialect dialect)
    {
        if (thinking.Kind(document) != JsonTokenType.StartObject)
        {
            return;
        }

        var reader = thinking.Reader(document);
        reader.Read();
        var enabled = false;
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                enabled = reader.ValueTextEquals("enabled"u8) || reader.ValueTextEquals("adaptive"u8);
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        if (dialect == UpstreamDialect.DeepSeek)
        {
            writer.WriteStartObject("thinking"u8);
            writer.WriteString("type"u8, enabled ? "enabled"u8 : "disabled"u8);
            writer.WriteEndObject();
        }
        else if (dialect == UpstreamDialect.Qwen)
        {
            writer.WriteBoolean("enable_thinking"u8, enabled);
        }
    }
}
