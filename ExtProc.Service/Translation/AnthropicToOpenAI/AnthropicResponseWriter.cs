using System.Buffers;
using System.Text.Json;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.AnthropicToOpenAI;

/// <summary>A buffered OpenAI-format response (or error) written as an Anthropic message (providers.md §6.5).</summary>
internal static class AnthropicResponseWriter
{
    public static TranslationResult Write(ReadOnlySpan<byte> document, int status, TranslationState state, IBufferWriter<byte> output)
    {
        if (status is < 200 or > 299)
        {
            var (message, _) = ErrorBodies.ReadUpstream(document, status);
            var errorWriter = JsonOut.Writer(output);
            ErrorBodies.WriteAnthropic(errorWriter, ErrorBodies.AnthropicType(status), message);
            errorWriter.Flush();
            return TranslationResult.Rewritten(status);
        }

        var text = new TextBuffer();
        try
        {
            OpenAIResponse response;
            try
            {
                response = OpenAIResponse.Read(document);
                response.AppendContent(document, ref text);
            }
            catch (JsonException)
            {
                var errorWriter = JsonOut.Writer(output);
                ErrorBodies.WriteAnthropic(errorWriter, "api_error"u8, "The upstream returned a malformed response.");
                errorWriter.Flush();
                return TranslationResult.Rewritten(TranslationErrors.InvalidUpstreamResponse.Status);
            }

            var usage = default(TokenUsage);
            usage.ReadOpenAI(document, response.Usage);
            var toolCalls = response.ToolCallCount(document);

            var writer = JsonOut.Writer(output);
            writer.WriteStartObject();
            using (var id = new ScratchString(document, response.Id))
            {
                WriteMessageId(writer, id.Span);
            }

            writer.WriteString("type"u8, "message"u8);
            writer.WriteString("role"u8, "assistant"u8);
            if (response.Model.Kind(document) == JsonTokenType.String)
            {
                JsonOut.Raw(writer, "model"u8, document, response.Model);
            }
            else
            {
                writer.WriteString("model"u8, state.UpstreamModel);
            }

            writer.WriteStartArray("content"u8);
            if (response.ReasoningContent.Kind(document) == JsonTokenType.String && response.ReasoningContent.Length > 2)
            {
                // No signature: it cannot be replayed to real Anthropic, but clients can show it.
                writer.WriteStartObject();
                writer.WriteString("type"u8, "thinking"u8);
                JsonOut.Raw(writer, "thinking"u8, document, response.ReasoningContent);
                writer.WriteString("signature"u8, ""u8);
                writer.WriteEndObject();
            }

            if (text.Length > 0)
            {
                writer.WriteStartObject();
                writer.WriteString("type"u8, "text"u8);
                writer.WriteString("text"u8, text.Span);
                writer.WriteEndObject();
            }
            else if (response.Refusal.Kind(document) == JsonTokenType.String)
            {
                writer.WriteStartObject();
                writer.WriteString("type"u8, "text"u8);
                JsonOut.Raw(writer, "text"u8, document, response.Refusal);
                writer.WriteEndObject();
            }

            if (toolCalls > 0)
            {
                WriteToolUses(writer, document, response.ToolCalls, state);
            }

            writer.WriteEndArray();
            using (var finish = new ScratchString(document, response.FinishReason))
            {
                writer.WriteString("stop_reason"u8, toolCalls > 0 && !FinishReasons.NormalizeOpenAI(finish.Span).SequenceEqual(FinishReasons.Length)
                    ? "tool_use"u8
                    : FinishReasons.ToAnthropic(finish.Span));
            }

            writer.WriteNull("stop_sequence"u8);
            usage.WriteAnthropic(writer);
            writer.WriteEndObject();
            writer.Flush();
            return TranslationResult.Rewritten(status);
        }
        finally
        {
            text.Dispose();
        }
    }

    /// <summary>Anthropic clients expect <c>msg_</c> ids.</summary>
    public static void WriteMessageId(Utf8JsonWriter writer, ReadOnlySpan<byte> upstreamId)
    {
        if (upstreamId.StartsWith("msg_"u8))
        {
            writer.WriteString("id"u8, upstreamId);
            return;
        }

        Span<byte> id = stackalloc byte[Math.Min(upstreamId.Length, 200) + 4];
        "msg_"u8.CopyTo(id);
        upstreamId[..(id.Length - 4)].CopyTo(id[4..]);
        writer.WriteString("id"u8, id);
    }

    private static void WriteToolUses(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice toolCalls, TranslationState state)
    {
        var reader = toolCalls.Reader(document);
        reader.Read();
        while (JsonRead.NextElement(ref reader))
        {
            var call = OpenAIToolCall.Read(ref reader, toolCalls.Start);
            writer.WriteStartObject();
            writer.WriteString("type"u8, "tool_use"u8);
            using (var id = new ScratchString(document, call.Id))
            {
                writer.WriteString("id"u8, id.Span);
            }

            using (var name = new ScratchString(document, call.Name))
            {
                if (state.RestoreToolName(name.Span) is { } original)
                {
                    writer.WriteString("name"u8, original);
                }
                else
                {
                    writer.WriteString("name"u8, name.Span);
                }
            }

            writer.WritePropertyName("input"u8);
            JsonOut.ArgumentsAsObject(writer, document, call.Arguments);
            writer.WriteEndObject();
        }
    }
}
