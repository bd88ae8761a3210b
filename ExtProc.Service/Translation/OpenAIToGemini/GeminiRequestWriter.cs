using System.Buffers;
using System.Text.Json;
using ExtProc.Protocols;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToGemini;

/// <summary>Writes the Gemini generateContent request for an OpenAI Chat Completions request (providers.md §6.7).</summary>
internal static class GeminiRequestWriter
{
    // Google's documented stand-in for a thought signature we never saw (histories not produced by Gemini).
    private static ReadOnlySpan<byte> DummySignature => "skip_thought_signature_validator"u8;

    private enum Turn
    {
        None,
        User,
        Model,
    }

    public static string? Write(ReadOnlySpan<byte> document, in OpenAIRequest request, TranslationState state, IBufferWriter<byte> output)
    {
        var jsonSchema = GeminiSchema.TakesJsonSchema(state.UpstreamModel);
        var toolNames = ToolCallLookup.For(document, request);
        var writer = JsonOut.Writer(output);
        writer.WriteStartObject();
        if (WriteContents(writer, document, request, toolNames) is { } refused)
        {
            return refused;
        }

        WriteSystem(writer, document, request);
        if (request.Tools.Kind(document) == JsonTokenType.StartArray && WriteTools(writer, document, request.Tools, state, jsonSchema) is { } badTool)
        {
            return badTool;
        }

        WriteToolConfig(writer, document, request.ToolChoice);
        WriteGenerationConfig(writer, document, request, jsonSchema);
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
                writer.WriteStartObject("systemInstruction"u8);
                writer.WriteStartArray("parts"u8);
                started = true;
            }

            OpenAIText.WriteAll(writer, document, message.Content, typed: false);
        }

        if (started)
        {
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
    }

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
        writer.WriteString(JsonNames.Role, wanted == Turn.User ? JsonNames.User : JsonNames.Model);
        writer.WriteStartArray(JsonNames.Parts);
        turn = wanted;
    }

    private static string? WriteContents(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in OpenAIRequest request, ToolCallLookup toolNames)
    {
        writer.WriteStartArray("contents"u8);
        var turn = Turn.None;
        for (var i = 0; i < request.MessageCount; i++)
        {
            ref readonly var message = ref request.Message(i);
            switch (message.Role)
            {
                case OpenAIRole.System or OpenAIRole.Developer:
                    break;
                case OpenAIRole.User:
                    if (WriteUser(writer, document, message.Content, ref turn) is { } refused)
                    {
                        return refused;
                    }

                    break;
                case OpenAIRole.Tool:
                    Open(writer, ref turn, Turn.User);
                    WriteFunctionResponse(writer, document, request, message, toolNames);
                    break;
                case OpenAIRole.Assistant:
                    WriteModel(writer, document, request, message, ref turn);
                    break;
                default:
                    return "A message has a role Gemini cannot carry.";
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

    private static string? WriteUser(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice content, ref Turn turn)
    {
        if (content.Kind(document) == JsonTokenType.String)
        {
            Open(writer, ref turn, Turn.User);
            OpenAIText.WriteOne(writer, document, content, typed: false);
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
            Open(writer, ref turn, Turn.User);
            if (part.IsAudio)
            {
                return "Audio input is not carried to Gemini by this gateway yet.";
            }

            if (part.Text.IsPresent)
            {
                OpenAIText.WriteOne(writer, document, part.Text, typed: false);
            }
            else if (part.ImageUrl.IsPresent || part.FileData.IsPresent)
            {
                WriteMedia(writer, document, part.ImageUrl.IsPresent ? part.ImageUrl : part.FileData);
            }
            else if (part.FileId.IsPresent)
            {
                return "File ids belong to the OpenAI Files API; Gemini cannot read them.";
            }
        }

        return null;
    }

    private static void WriteMedia(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice urlSlice)
    {
        var reader = urlSlice.Reader(document);
        reader.Read();
        var url = new TextBuffer();
        try
        {
            url.Append(ref reader);
            writer.WriteStartObject();
            if (DataUri.TryParse(url.Span, out var mediaType, out var data))
            {
                writer.WriteStartObject("inlineData"u8);
                writer.WriteString("mimeType"u8, mediaType);
                writer.WriteString("data"u8, data);
            }
            else
            {
                writer.WriteStartObject("fileData"u8);
                writer.WriteString("mimeType"u8, DataUri.GuessMediaType(url.Span));
                writer.WriteString("fileUri"u8, url.Span);
            }

            writer.WriteEndObject();
            writer.WriteEndObject();
        }
        finally
        {
            url.Dispose();
        }
    }

    private static void WriteFunctionResponse(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in OpenAIRequest request, in OpenAIMessage message, ToolCallLookup toolNames)
    {
        writer.WriteStartObject();
        writer.WriteStartObject(JsonNames.FunctionResponse);
        using (var id = new ScratchString(document, message.ToolCallId, stackalloc byte[ScratchString.StackSize]))
        {
            var call = toolNames.Find(document, request, id.Span);
            if (call >= 0)
            {
                ToolNaming.WriteToolName(writer, JsonNames.Name, document, request.ToolCall(call).Name, ProtocolKind.Gemini);
            }
            else
            {
                writer.WriteString(JsonNames.Name, "unknown_tool"u8);
            }
        }

        writer.WritePropertyName(JsonNames.Response);
        if (message.Content.Kind(document) == JsonTokenType.String)
        {
            using var content = new ScratchString(document, message.Content, stackalloc byte[ScratchString.StackSize]);
            WriteResponseValue(writer, content.Span);
            writer.WriteEndObject();
            writer.WriteEndObject();
            return;
        }

        var text = new TextBuffer();
        try
        {
            if (message.Content.Kind(document) == JsonTokenType.StartArray)
            {
                var parts = message.Content.Reader(document);
                parts.Read();
                while (JsonRead.NextElement(ref parts))
                {
                    var part = OpenAIPart.Read(ref parts, message.Content.Start);
                    if (part.Text.Kind(document) == JsonTokenType.String)
                    {
                        var value = part.Text.Reader(document);
                        value.Read();
                        text.Append(ref value);
                    }
                }
            }

            WriteResponseValue(writer, text.Span);
        }
        finally
        {
            text.Dispose();
        }

        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    /// <summary>A JSON object result is the response itself; anything else is wrapped as {"output": …}.</summary>
    private static void WriteResponseValue(Utf8JsonWriter writer, ReadOnlySpan<byte> text)
    {
        if (JsonRead.IsSingleObject(text))
        {
            writer.WriteRawValue(text, skipInputValidation: true);
        }
        else
        {
            writer.WriteStartObject();
            writer.WriteString("output"u8, text);
            writer.WriteEndObject();
        }
    }

    private static void WriteModel(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in OpenAIRequest request, in OpenAIMessage message, ref Turn turn)
    {
        if (message.Content.Kind(document) == JsonTokenType.String && message.Content.Length > 2)
        {
            Open(writer, ref turn, Turn.Model);
            OpenAIText.WriteOne(writer, document, message.Content, typed: false);
        }
        else if (message.Content.Kind(document) == JsonTokenType.StartArray)
        {
            Open(writer, ref turn, Turn.Model);
            OpenAIText.WriteAll(writer, document, message.Content, typed: false);
        }

        for (var i = 0; i < message.ToolCallCount; i++)
        {
            ref readonly var call = ref request.ToolCall(message.FirstToolCall + i);
            var first = i == 0;
            Open(writer, ref turn, Turn.Model);
            writer.WriteStartObject();
            writer.WriteStartObject(JsonNames.FunctionCall);
            ToolNaming.WriteToolName(writer, JsonNames.Name, document, call.Name, ProtocolKind.Gemini);
            writer.WritePropertyName(JsonNames.Args);
            JsonOut.ArgumentsAsObject(writer, document, call.Arguments);
            writer.WriteEndObject();

            // Gemini 3 wants the signature of a turn's first function call back (the client echoes it in extra_content).
            if (call.ThoughtSignature.Kind(document) == JsonTokenType.String)
            {
                JsonOut.Raw(writer, JsonNames.ThoughtSignature, document, call.ThoughtSignature);
            }
            else if (first)
            {
                writer.WriteString(JsonNames.ThoughtSignature, DummySignature);
            }

            writer.WriteEndObject();
        }
    }

    private static string? WriteTools(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice tools, TranslationState state, bool jsonSchema)
    {
        writer.WriteStartArray("tools"u8);
        writer.WriteStartObject();
        writer.WriteStartArray("functionDeclarations"u8);
        var reader = tools.Reader(document);
        reader.Read();
        while (JsonRead.NextElement(ref reader))
        {
            if (OpenAIFunctionTool.Read(ref reader, document, tools.Start, ProtocolKind.Gemini, state, out var tool) is { } error)
            {
                return error;
            }

            writer.WriteStartObject();
            writer.WriteString("name"u8, tool.UpstreamName);
            if (tool.Description.Kind(document) == JsonTokenType.String)
            {
                JsonOut.Raw(writer, "description"u8, document, tool.Description);
            }

            if (tool.Parameters.Kind(document) == JsonTokenType.StartObject)
            {
                if (jsonSchema)
                {
                    JsonOut.Raw(writer, "parametersJsonSchema"u8, document, tool.Parameters);
                }
                else
                {
                    writer.WritePropertyName("parameters"u8);
                    GeminiSchema.Write(writer, document, tool.Parameters, tool.Parameters);
                }
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
        writer.WriteEndArray();
        return null;
    }

    private static void WriteToolConfig(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice choice)
    {
        var kind = choice.Kind(document);
        if (kind is not (JsonTokenType.String or JsonTokenType.StartObject))
        {
            return;
        }

        writer.WriteStartObject("toolConfig"u8);
        writer.WriteStartObject("functionCallingConfig"u8);
        if (kind == JsonTokenType.String)
        {
            writer.WriteString("mode"u8, JsonRead.StringEquals(document, choice, "none"u8) ? "NONE"u8
                : JsonRead.StringEquals(document, choice, "required"u8) ? "ANY"u8
                : "AUTO"u8);
        }
        else
        {
            writer.WriteString("mode"u8, "ANY"u8);
            writer.WriteStartArray("allowedFunctionNames"u8);
            writer.WriteStringValue(ToolNaming.UpstreamToolName(OpenAIRequest.NamedToolChoice(document, choice) ?? string.Empty, ProtocolKind.Gemini));
            writer.WriteEndArray();
        }

        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    private static void WriteGenerationConfig(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in OpenAIRequest request, bool jsonSchema)
    {
        writer.WriteStartObject("generationConfig"u8);
        var maxTokens = request.MaxCompletionTokens.IsPresent ? request.MaxCompletionTokens : request.MaxTokens;
        CopyNumber(writer, "maxOutputTokens"u8, document, maxTokens);
        CopyNumber(writer, "temperature"u8, document, request.Temperature);
        CopyNumber(writer, "topP"u8, document, request.TopP);
        CopyNumber(writer, "candidateCount"u8, document, request.N);
        CopyNumber(writer, "seed"u8, document, request.Seed);
        CopyNumber(writer, "presencePenalty"u8, document, request.PresencePenalty);
        CopyNumber(writer, "frequencyPenalty"u8, document, request.FrequencyPenalty);
        if (request.Stop.Kind(document) == JsonTokenType.String)
        {
            writer.WriteStartArray("stopSequences"u8);
            writer.WriteRawValue(request.Stop.In(document), skipInputValidation: true);
            writer.WriteEndArray();
        }
        else if (request.Stop.Kind(document) == JsonTokenType.StartArray)
        {
            JsonOut.Raw(writer, "stopSequences"u8, document, request.Stop);
        }

        WriteResponseFormat(writer, document, request.ResponseFormat, jsonSchema);
        writer.WriteEndObject();
    }

    private static void CopyNumber(Utf8JsonWriter writer, ReadOnlySpan<byte> name, ReadOnlySpan<byte> document, JsonSlice value)
    {
        if (value.Kind(document) == JsonTokenType.Number)
        {
            JsonOut.Raw(writer, name, document, value);
        }
    }

    private static void WriteResponseFormat(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice format, bool jsonSchema)
    {
        if (format.Kind(document) != JsonTokenType.StartObject)
        {
            return;
        }

        var reader = format.Reader(document);
        reader.Read();
        JsonSlice type = default, schema = default;
        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("type"u8))
            {
                type = JsonRead.PropertyValue(ref reader, format.Start);
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

        if (JsonRead.StringEquals(document, type, "json_object"u8))
        {
            writer.WriteString("responseMimeType"u8, "application/json"u8);
        }
        else if (JsonRead.StringEquals(document, type, "json_schema"u8) && schema.Kind(document) == JsonTokenType.StartObject)
        {
            writer.WriteString("responseMimeType"u8, "application/json"u8);
            if (jsonSchema)
            {
                JsonOut.Raw(writer, "responseJsonSchema"u8, document, schema);
            }
            else
            {
                writer.WritePropertyName("responseSchema"u8);
                GeminiSchema.Write(writer, document, schema, schema);
            }
        }
    }
}
