using System.Buffers;
using System.Text.Json;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToAnthropic;

/// <summary>A buffered Anthropic Messages response (or error) written as an OpenAI chat completion (providers.md §6.2).</summary>
internal static class AnthropicResponseReader
{
    public static TranslationResult WriteOpenAI(ReadOnlySpan<byte> document, int status, TranslationState state, IBufferWriter<byte> output)
    {
        if (status is < 200 or > 299)
        {
            var (message, code) = ErrorBodies.ReadUpstream(document, status);
            var errorWriter = JsonOut.Writer(output);
            ErrorBodies.WriteOpenAI(errorWriter, message, ErrorBodies.OpenAIType(status), code);
            errorWriter.Flush();
            return TranslationResult.Rewritten(status);
        }

        var text = new TextBuffer();
        var thinking = new TextBuffer();
        try
        {
            // Read everything first: a malformed body must not leave half a completion in the output.
            JsonSlice id = default, model = default, content = default, usageSlice = default, stopReason = default;
            var reader = new Utf8JsonReader(document, JsonRead.Options);
            if (!System.Text.Unicode.Utf8.IsValid(document) || !JsonRead.EnterObject(ref reader))
            {
                throw new JsonException("The response must be an object.");
            }

            while (JsonRead.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("id"u8))
                {
                    id = JsonRead.PropertyValue(ref reader, 0);
                }
                else if (reader.ValueTextEquals("model"u8))
                {
                    model = JsonRead.PropertyValue(ref reader, 0);
                }
                else if (reader.ValueTextEquals("content"u8))
                {
                    content = JsonRead.PropertyValue(ref reader, 0);
                }
                else if (reader.ValueTextEquals("stop_reason"u8))
                {
                    stopReason = JsonRead.PropertyValue(ref reader, 0);
                }
                else if (reader.ValueTextEquals("usage"u8))
                {
                    usageSlice = JsonRead.PropertyValue(ref reader, 0);
                }
                else
                {
                    JsonRead.SkipPropertyValue(ref reader);
                }
            }

            if (reader.Read() || content.Kind(document) != JsonTokenType.StartArray)
            {
                throw new JsonException("The response has no content array.");
            }

            var toolCalls = 0;
            var blocks = content.Reader(document);
            blocks.Read();
            while (JsonRead.NextElement(ref blocks))
            {
                var block = AnthropicBlock.Read(document, JsonRead.Value(ref blocks, content.Start));
                if (block.IsText && block.Text.Kind(document) == JsonTokenType.String)
                {
                    AppendString(ref text, document, block.Text);
                }
                else if (block.IsThinking && block.Text.Kind(document) == JsonTokenType.String)
                {
                    AppendString(ref thinking, document, block.Text);
                }
                else if (block.IsToolUse)
                {
                    toolCalls++;
                }
            }

            var usage = default(TokenUsage);
            usage.ReadAnthropic(document, usageSlice);

            var writer = JsonOut.Writer(output);
            writer.WriteStartObject();
            WriteStringOr(writer, "id"u8, document, id, "chatcmpl-");
            writer.WriteString("object"u8, "chat.completion"u8);
            writer.WriteNumber("created"u8, state.Created);
            WriteStringOr(writer, "model"u8, document, model, state.ClientModel);
            writer.WriteStartArray("choices"u8);
            writer.WriteStartObject();
            writer.WriteNumber("index"u8, 0);
            OpenAIMessageOut.WriteStart(writer, text.Span, thinking.Span);

            if (toolCalls > 0)
            {
                WriteToolCalls(writer, document, content, state);
            }

            writer.WriteEndObject();
            using (var reason = new ScratchString(document, stopReason))
            {
                var finish = FinishReasons.FromAnthropic(reason.Span);
                writer.WriteString("finish_reason"u8, toolCalls > 0 && finish.SequenceEqual(FinishReasons.Stop) ? FinishReasons.ToolCalls : finish);
            }

            writer.WriteNull("logprobs"u8);
            writer.WriteEndObject();
            writer.WriteEndArray();
            usage.WriteOpenAI(writer);
            writer.WriteEndObject();
            writer.Flush();
            return TranslationResult.Rewritten(status);
        }
        catch (JsonException)
        {
            var writer = JsonOut.Writer(output);
            ErrorBodies.WriteOpenAI(writer, "The upstream returned a malformed response.", "server_error"u8, TranslationErrors.InvalidUpstreamResponse.Code);
            writer.Flush();
            return TranslationResult.Rewritten(TranslationErrors.InvalidUpstreamResponse.Status);
        }
        finally
        {
            text.Dispose();
            thinking.Dispose();
        }
    }

    private static void WriteToolCalls(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice content, TranslationState state)
    {
        writer.WriteStartArray("tool_calls"u8);
        var blocks = content.Reader(document);
        blocks.Read();
        while (JsonRead.NextElement(ref blocks))
        {
            var block = AnthropicBlock.Read(document, JsonRead.Value(ref blocks, content.Start));
            if (!block.IsToolUse)
            {
                continue;
            }

            writer.WriteStartObject();
            using (var id = new ScratchString(document, block.Id))
            {
                writer.WriteString("id"u8, id.Span);
            }

            writer.WriteString("type"u8, "function"u8);
            writer.WriteStartObject("function"u8);
            using (var name = new ScratchString(document, block.Name))
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

            JsonOut.ObjectAsArgumentsProperty(writer, document, block.Input);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    private static void AppendString(ref TextBuffer buffer, ReadOnlySpan<byte> document, JsonSlice slice)
    {
        var reader = slice.Reader(document);
        reader.Read();
        buffer.Append(ref reader);
    }

    private static void WriteStringOr(Utf8JsonWriter writer, ReadOnlySpan<byte> name, ReadOnlySpan<byte> document, JsonSlice value, string fallback)
    {
        if (value.Kind(document) == JsonTokenType.String)
        {
            JsonOut.Raw(writer, name, document, value);
        }
        else
        {
            writer.WriteString(name, fallback);
        }
    }
}
