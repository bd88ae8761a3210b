using System.Buffers;
using System.Text.Json;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToGemini;

/// <summary>A buffered Gemini response (or error) written as an OpenAI chat completion (providers.md §6.7).</summary>
internal static class GeminiResponseReader
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

        var candidates = default(GeminiCandidates);
        try
        {
            return WriteOpenAI(document, status, state, output, ref candidates);
        }
        finally
        {
            candidates.Dispose();
        }
    }

    private static TranslationResult WriteOpenAI(ReadOnlySpan<byte> document, int status, TranslationState state, IBufferWriter<byte> output, ref GeminiCandidates candidates)
    {
        GeminiResponse response;
        try
        {
            response = GeminiResponse.Read(document, ref candidates);
            if (candidates.Malformed)
            {
                throw new JsonException("A candidate or part is malformed.");
            }
        }
        catch (JsonException)
        {
            var errorWriter = JsonOut.Writer(output);
            ErrorBodies.WriteOpenAI(errorWriter, "The upstream returned a malformed response.", "server_error"u8, TranslationErrors.InvalidUpstreamResponse.Code);
            errorWriter.Flush();
            return TranslationResult.Rewritten(TranslationErrors.InvalidUpstreamResponse.Status);
        }

        var usage = default(TokenUsage);
        usage.ReadGemini(document, response.UsageMetadata);
        var writer = JsonOut.Writer(output);
        writer.WriteStartObject();
        if (response.ResponseId.Kind(document) == JsonTokenType.String)
        {
            JsonOut.Raw(writer, "id"u8, document, response.ResponseId);
        }
        else
        {
            writer.WriteString("id"u8, "chatcmpl-" + state.RequestId);
        }

        writer.WriteString("object"u8, "chat.completion"u8);
        writer.WriteNumber("created"u8, state.Created);
        if (response.ModelVersion.Kind(document) == JsonTokenType.String)
        {
            JsonOut.Raw(writer, "model"u8, document, response.ModelVersion);
        }
        else
        {
            writer.WriteString("model"u8, state.UpstreamModel);
        }

        writer.WriteStartArray("choices"u8);
        var toolOrdinal = 0;
        var any = false;
        for (var i = 0; i < candidates.Count; i++)
        {
            WriteChoice(writer, document, candidates, candidates.Candidate(i), state, ref toolOrdinal);
            any = true;
        }

        if (!any)
        {
            // A blocked prompt has no candidates: an empty answer filtered by content policy.
            writer.WriteStartObject();
            writer.WriteNumber("index"u8, 0);
            writer.WriteStartObject("message"u8);
            writer.WriteString("role"u8, "assistant"u8);
            writer.WriteNull("content"u8);
            writer.WriteNull("refusal"u8);
            writer.WriteEndObject();
            writer.WriteString("finish_reason"u8, response.BlockReason.IsPresent ? FinishReasons.ContentFilter : FinishReasons.Stop);
            writer.WriteNull("logprobs"u8);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        usage.WriteOpenAI(writer);
        writer.WriteEndObject();
        writer.Flush();
        return TranslationResult.Rewritten(status);
    }

    private static void WriteChoice(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in GeminiCandidates candidates, in GeminiCandidate candidate, TranslationState state, ref int toolOrdinal)
    {
        var text = new TextBuffer();
        var thoughts = new TextBuffer();
        try
        {
            var calls = 0;
            for (var i = 0; i < candidate.PartCount; i++)
            {
                ref readonly var part = ref candidates.Part(candidate.FirstPart + i);
                if (part.IsFunctionCall)
                {
                    calls++;
                }
                else if (part.Text.Kind(document) == JsonTokenType.String)
                {
                    var value = part.Text.Reader(document);
                    value.Read();
                    if (part.Thought)
                    {
                        thoughts.Append(ref value);
                    }
                    else
                    {
                        text.Append(ref value);
                    }
                }
            }

            writer.WriteStartObject();
            writer.WriteNumber("index"u8, candidate.Index);
            OpenAIMessageOut.WriteStart(writer, text.Span, thoughts.Span);

            if (calls > 0)
            {
                writer.WriteStartArray("tool_calls"u8);
                for (var i = 0; i < candidate.PartCount; i++)
                {
                    ref readonly var part = ref candidates.Part(candidate.FirstPart + i);
                    if (part.IsFunctionCall)
                    {
                        WriteToolCall(writer, document, part, state, toolOrdinal++, index: -1);
                    }
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
            using (var reason = new ScratchString(document, candidate.FinishReason))
            {
                var finish = FinishReasons.FromGemini(reason.Span);
                writer.WriteString("finish_reason"u8, calls > 0 && finish.SequenceEqual(FinishReasons.Stop) ? FinishReasons.ToolCalls : finish);
            }

            writer.WriteNull("logprobs"u8);
            writer.WriteEndObject();
        }
        finally
        {
            text.Dispose();
            thoughts.Dispose();
        }
    }

    /// <summary>
    /// One tool call object. Gemini often gives no id, so one is made from the request id and position;
    /// the thought signature rides in <c>extra_content.google</c> (Gemini's own OpenAI convention) so a
    /// client can send it back.
    /// </summary>
    public static void WriteToolCall(Utf8JsonWriter writer, ReadOnlySpan<byte> document, in GeminiPart part, TranslationState state, int ordinal, int index)
    {
        writer.WriteStartObject();
        if (index >= 0)
        {
            writer.WriteNumber("index"u8, index);
        }

        if (part.CallId.Kind(document) == JsonTokenType.String && part.CallId.Length > 2)
        {
            JsonOut.Raw(writer, "id"u8, document, part.CallId);
        }
        else
        {
            writer.WriteString("id"u8, ToolNaming.SynthesizedCallId(state.RequestId, ordinal));
        }

        writer.WriteString("type"u8, "function"u8);
        writer.WriteStartObject("function"u8);
        using (var name = new ScratchString(document, part.CallName))
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

        JsonOut.ObjectAsArgumentsProperty(writer, document, part.CallArgs);
        writer.WriteEndObject();
        if (part.ThoughtSignature.Kind(document) == JsonTokenType.String)
        {
            writer.WriteStartObject("extra_content"u8);
            writer.WriteStartObject("google"u8);
            JsonOut.Raw(writer, "thought_signature"u8, document, part.ThoughtSignature);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        writer.WriteEndObject();
    }
}
