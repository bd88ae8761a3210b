using System.Buffers;
using System.Text.Json;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToCompatible;

/// <summary>
/// Buffered responses of OpenAI-compatible upstreams, made strictly OpenAI: finish reasons outside the
/// five OpenAI values mapped (Mistral <c>model_length</c>, DeepSeek <c>insufficient_system_resource</c>),
/// <c>tool_calls</c> when calls came with <c>stop</c>, and error bodies that are not OpenAI's nested
/// object (Mistral's flat one, Gemini-compat arrays, HTML) rewrapped with their status kept.
/// </summary>
internal static class CompatibleResponse
{
    public static TranslationResult Normalize(ReadOnlySpan<byte> document, int status, IBufferWriter<byte> output)
    {
        if (status is < 200 or > 299)
        {
            if (IsOpenAIError(document))
            {
                return TranslationResult.Unchanged(status);
            }

            var (message, code) = ErrorBodies.ReadUpstream(document, status);
            var errorWriter = JsonOut.Writer(output);
            ErrorBodies.WriteOpenAI(errorWriter, message, ErrorBodies.OpenAIType(status), code);
            errorWriter.Flush();
            return TranslationResult.Rewritten(status);
        }

        OpenAIResponse response;
        try
        {
            response = OpenAIResponse.Read(document);
        }
        catch (JsonException)
        {
            var errorWriter = JsonOut.Writer(output);
            ErrorBodies.WriteOpenAI(errorWriter, "The upstream returned a malformed response.", "server_error"u8, TranslationErrors.InvalidUpstreamResponse.Code);
            errorWriter.Flush();
            return TranslationResult.Rewritten(TranslationErrors.InvalidUpstreamResponse.Status);
        }

        using var finish = new ScratchString(document, response.FinishReason);
        var wanted = Wanted(finish.Span, response.ToolCallCount(document) > 0);
        if (!response.FinishReason.IsPresent || finish.Span.SequenceEqual(wanted))
        {
            return TranslationResult.Unchanged(status);
        }

        var writer = JsonOut.Writer(output);
        var reader = new Utf8JsonReader(document, JsonRead.Options);
        reader.Read();
        writer.WriteStartObject();
        while (JsonRead.NextProperty(ref reader))
        {
            var escaped = reader.ValueIsEscaped ? reader.GetString() : null;
            var name = reader.ValueSpan;
            var isChoices = reader.ValueTextEquals("choices"u8);
            var value = JsonRead.PropertyValue(ref reader, 0);
            if (!isChoices)
            {
                JsonOut.Raw(writer, name, escaped, document, value);
                continue;
            }

            writer.WriteStartArray("choices"u8);
            var choices = value.Reader(document);
            choices.Read();
            var first = true;
            while (JsonRead.NextElement(ref choices))
            {
                var choice = JsonRead.Value(ref choices, value.Start);
                if (first)
                {
                    WriteWithFinish(writer, document, choice, wanted);
                    first = false;
                }
                else
                {
                    writer.WriteRawValue(choice.In(document), skipInputValidation: true);
                }
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
        writer.Flush();
        return TranslationResult.Rewritten(status);
    }

    /// <summary>The strict OpenAI finish reason for an upstream's (tool calls win over stop).</summary>
    public static ReadOnlySpan<byte> Wanted(ReadOnlySpan<byte> finish, bool sawToolCall)
    {
        var normalized = FinishReasons.NormalizeOpenAI(finish);
        return sawToolCall && normalized.SequenceEqual(FinishReasons.Stop) ? FinishReasons.ToolCalls : normalized;
    }

    /// <summary>Copies an object, replacing its finish_reason.</summary>
    public static void WriteWithFinish(Utf8JsonWriter writer, ReadOnlySpan<byte> document, JsonSlice choice, ReadOnlySpan<byte> finish)
    {
        writer.WriteStartObject();
        var reader = choice.Reader(document);
        reader.Read();
        while (JsonRead.NextProperty(ref reader))
        {
            var escaped = reader.ValueIsEscaped ? reader.GetString() : null;
            var name = reader.ValueSpan;
            var isFinish = reader.ValueTextEquals("finish_reason"u8);
            var value = JsonRead.PropertyValue(ref reader, choice.Start);
            if (isFinish)
            {
                writer.WriteString("finish_reason"u8, finish);
            }
            else
            {
                JsonOut.Raw(writer, name, escaped, document, value);
            }
        }

        writer.WriteEndObject();
    }

    private static bool IsOpenAIError(ReadOnlySpan<byte> document)
    {
        try
        {
            var reader = new Utf8JsonReader(document, JsonRead.Options);
            if (!JsonRead.EnterObject(ref reader))
            {
                return false;
            }

            var found = false;
            while (JsonRead.NextProperty(ref reader))
            {
                if (!reader.ValueTextEquals("error"u8))
                {
                    JsonRead.SkipPropertyValue(ref reader);
                    continue;
                }

                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    return false;
                }

                while (JsonRead.NextProperty(ref reader))
                {
                    var isCode = reader.ValueTextEquals("code"u8);
                    reader.Read();
                    if (isCode && reader.TokenType == JsonTokenType.Number)
                    {
                        return false; // numeric codes break OpenAI SDK error parsing: rewrap
                    }

                    reader.Skip();
                }

                found = true;
            }

            return found && !reader.Read();
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
