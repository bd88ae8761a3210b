using System.Text.Json;
using ExtProc.Protocols;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToCompatible;

/// <summary>
/// Re-serialises an OpenAI request for an OpenAI-compatible upstream with its quirks (providers.md §5):
/// Mistral 9-character tool-call ids, a bridging assistant turn between tool results and a user message,
/// <c>tool_choice: any</c>, <c>random_seed</c>, no <c>name</c> outside tool messages and no null fields;
/// DeepSeek's <c>reasoning_content</c> on tool-calling assistant turns; <c>max_tokens</c> for upstreams
/// that do not know <c>max_completion_tokens</c>. Everything else is copied as it came.
/// </summary>
internal static class CompatibleRequestWriter
{
    private static ReadOnlySpan<byte> MistralBridge => "Done."u8;

    /// <summary>Writes the rewritten request; returns whether anything differs from the input.</summary>
    public static bool Write(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in OpenAIRequest request, UpstreamDialect dialect)
    {
        var changed = false;
        var renameMaxTokens = dialect is UpstreamDialect.DeepSeek or UpstreamDialect.Qwen or UpstreamDialect.Mistral;
        writer.WriteStartObject();
        for (var i = 0; i < request.FieldCount; i++)
        {
            var field = request.Field(i);
            if (field.NameEquals(document, "messages"u8))
            {
                writer.WritePropertyName("messages"u8);
                changed |= WriteMessages(writer, document, request, dialect);
            }
            else if (renameMaxTokens && field.NameEquals(document, "max_completion_tokens"u8))
            {
                if (!request.MaxTokens.IsPresent)
                {
                    JsonOut.Raw(writer, "max_tokens"u8, document, field.Value);
                }

                changed = true;
            }
            else if (dialect == UpstreamDialect.Mistral && field.NameEquals(document, "seed"u8))
            {
                JsonOut.Raw(writer, "random_seed"u8, document, field.Value);
                changed = true;
            }
            else if (dialect == UpstreamDialect.Mistral && field.NameEquals(document, "tool_choice"u8))
            {
                if (JsonRead.StringEquals(document, field.Value, "required"u8))
                {
                    writer.WriteString("tool_choice"u8, "any"u8);
                    changed = true;
                }
                else
                {
                    JsonOut.Raw(writer, "tool_choice"u8, document, field.Value);
                }
            }
            else
            {
                field.CopyTo(writer, document);
            }
        }

        writer.WriteEndObject();
        return changed;
    }

    private static bool WriteMessages(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in OpenAIRequest request, UpstreamDialect dialect)
    {
        var ids = default(RewrittenIds);
        try
        {
            return WriteMessages(writer, document, request, dialect, ref ids);
        }
        finally
        {
            ids.Dispose();
        }
    }

    private static bool WriteMessages(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in OpenAIRequest request, UpstreamDialect dialect, ref RewrittenIds ids)
    {
        var changed = false;
        var previous = OpenAIRole.Unknown;
        writer.WriteStartArray();
        for (var i = 0; i < request.MessageCount; i++)
        {
            ref readonly var message = ref request.Message(i);
            if (dialect == UpstreamDialect.Mistral && previous == OpenAIRole.Tool && message.Role == OpenAIRole.User)
            {
                writer.WriteStartObject();
                writer.WriteString("role"u8, "assistant"u8);
                writer.WriteString("content"u8, MistralBridge);
                writer.WriteEndObject();
                changed = true;
            }

            changed |= WriteMessage(writer, document, request, message, dialect, ref ids);
            previous = message.Role;
        }

        writer.WriteEndArray();
        return changed;
    }

    private static bool WriteMessage(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in OpenAIRequest request, in OpenAIMessage message, UpstreamDialect dialect, ref RewrittenIds ids)
    {
        var mistral = dialect == UpstreamDialect.Mistral;
        var addReasoning = dialect == UpstreamDialect.DeepSeek && message.Role == OpenAIRole.Assistant
            && message.ToolCalls.Kind(document) == JsonTokenType.StartArray && !message.ReasoningContent.IsPresent;
        if (!mistral && !addReasoning)
        {
            writer.WriteRawValue(message.Whole.In(document), skipInputValidation: true);
            return false;
        }

        var changed = addReasoning;
        writer.WriteStartObject();
        for (var i = 0; i < message.FieldCount; i++)
        {
            var field = request.MessageField(message.FirstField + i);
            var isName = field.NameEquals(document, "name"u8);
            var isToolCallId = field.NameEquals(document, "tool_call_id"u8);
            var isToolCalls = field.NameEquals(document, "tool_calls"u8);
            var value = field.Value;
            if (mistral && (value.Kind(document) == JsonTokenType.Null || (isName && message.Role != OpenAIRole.Tool)))
            {
                changed = true; // Mistral refuses null fields and names outside tool messages
                continue;
            }

            if (mistral && isToolCallId)
            {
                changed |= ids.Write(writer, JsonNames.ToolCallId, document, value, ProtocolKind.OpenAiChat, UpstreamDialect.Mistral);
            }
            else if (mistral && isToolCalls && value.Kind(document) == JsonTokenType.StartArray)
            {
                writer.WritePropertyName(JsonNames.ToolCalls);
                changed |= WriteToolCalls(writer, document, value, ref ids);
            }
            else
            {
                field.CopyTo(writer, document);
            }
        }

        if (addReasoning)
        {
            // DeepSeek's thinking mode refuses a tool-calling turn without its reasoning; clients rarely keep it.
            writer.WriteString("reasoning_content"u8, ""u8);
        }

        writer.WriteEndObject();
        return changed;
    }

    private static bool WriteToolCalls(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice calls, ref RewrittenIds ids)
    {
        var changed = false;
        writer.WriteStartArray();
        var reader = calls.Reader(document);
        reader.Read();
        while (JsonRead.NextElement(ref reader))
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new JsonException("A tool call must be an object.");
            }

            writer.WriteStartObject();
            while (JsonRead.NextProperty(ref reader))
            {
                var isId = reader.ValueTextEquals("id"u8);
                var name = reader.ValueSpan;
                var escaped = reader.ValueIsEscaped ? reader.GetString() : null;
                var value = JsonRead.PropertyValue(ref reader, calls.Start);
                if (isId)
                {
                    changed |= ids.Write(writer, JsonNames.Id, document, value, ProtocolKind.OpenAiChat, UpstreamDialect.Mistral);
                }
                else
                {
                    JsonOut.Raw(writer, name, escaped, document, value);
                }
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        return changed;
    }
}
