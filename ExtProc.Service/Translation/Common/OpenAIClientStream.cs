using System.Buffers;
using System.Text.Json;

namespace ExtProc.Translation.Common;

/// <summary>
/// A stream written for an OpenAI Chat Completions client: <c>data:</c> frames of chat.completion.chunk,
/// one tool-call index counter per response, the finish reason forced to <c>tool_calls</c> once a tool
/// call went out, a usage chunk only when the client asked, and <c>[DONE]</c> exactly once.
/// </summary>
internal abstract class OpenAIClientStream : SseStreamTranslator
{
    protected OpenAIClientStream(TranslationState state)
        : base(state)
    {
    }

    /// <summary>The response id on every chunk (from the upstream's first event).</summary>
    protected string ChunkId { get; set; } = "chatcmpl-";

    protected string ChunkModel { get; set; } = string.Empty;

    protected bool RoleSent { get; set; }

    protected bool SawToolCall { get; set; }

    protected int NextToolIndex { get; set; }

    protected TokenUsage Usage;

    /// <summary>Opens a chunk up to the inside of <c>choices[0].delta</c>.</summary>
    protected Utf8JsonWriter BeginChunk(IBufferWriter<byte> output, int choice = 0)
    {
        var writer = BeginData(output);
        WriteEnvelope(writer);
        writer.WriteStartArray("choices"u8);
        writer.WriteStartObject();
        writer.WriteNumber("index"u8, choice);
        writer.WriteStartObject("delta"u8);
        if (!RoleSent)
        {
            RoleSent = true;
            writer.WriteString("role"u8, "assistant"u8);
        }

        return writer;
    }

    protected void EndChunk(IBufferWriter<byte> output, Utf8JsonWriter writer, ReadOnlySpan<byte> finishReason = default)
    {
        writer.WriteEndObject();
        if (finishReason.IsEmpty)
        {
            writer.WriteNull("finish_reason"u8);
        }
        else
        {
            writer.WriteString("finish_reason"u8, finishReason);
        }

        writer.WriteEndObject();
        writer.WriteEndArray();
        writer.WriteEndObject();
        EndFrame(output);
    }

    /// <summary>The first delta of a tool call: index, id, type, name and empty arguments.</summary>
    protected int StartToolCall(IBufferWriter<byte> output, ReadOnlySpan<byte> id, ReadOnlySpan<byte> upstreamName, ReadOnlySpan<byte> fullArguments = default, bool hasArguments = false, int choice = 0)
    {
        var index = NextToolIndex++;
        SawToolCall = true;
        var writer = BeginChunk(output, choice);
        writer.WriteStartArray("tool_calls"u8);
        writer.WriteStartObject();
        writer.WriteNumber("index"u8, index);
        writer.WriteString("id"u8, id);
        writer.WriteString("type"u8, "function"u8);
        writer.WriteStartObject("function"u8);
        WriteClientToolName(writer, upstreamName);
        if (hasArguments)
        {
            JsonOut.ObjectAsArguments(writer, fullArguments);
        }
        else
        {
            writer.WriteString("arguments"u8, ""u8);
        }

        writer.WriteEndObject();
        writer.WriteEndObject();
        writer.WriteEndArray();
        EndChunk(output, writer);
        return index;
    }

    protected void WriteClientToolName(Utf8JsonWriter writer, ReadOnlySpan<byte> upstreamName)
    {
        if (State.RestoreToolName(upstreamName) is { } original)
        {
            writer.WriteString("name"u8, original);
        }
        else
        {
            writer.WriteString("name"u8, upstreamName);
        }
    }

    /// <summary>A later arguments fragment for the tool call at <paramref name="index"/>.</summary>
    protected void ToolArguments(IBufferWriter<byte> output, int index, ReadOnlySpan<byte> fragment, int choice = 0)
    {
        var writer = BeginChunk(output, choice);
        writer.WriteStartArray("tool_calls"u8);
        writer.WriteStartObject();
        writer.WriteNumber("index"u8, index);
        writer.WriteStartObject("function"u8);
        writer.WriteString("arguments"u8, fragment);
        writer.WriteEndObject();
        writer.WriteEndObject();
        writer.WriteEndArray();
        EndChunk(output, writer);
    }

    /// <summary>A text (or reasoning) delta; <paramref name="text"/> is unescaped UTF-8.</summary>
    protected void TextDelta(IBufferWriter<byte> output, ReadOnlySpan<byte> field, ReadOnlySpan<byte> text, int choice = 0)
    {
        var writer = BeginChunk(output, choice);
        writer.WriteString(field, text);
        EndChunk(output, writer);
    }

    /// <summary>The finish chunk, the usage chunk if asked for, then [DONE]; ends the stream.</summary>
    protected void Complete(IBufferWriter<byte> output, ReadOnlySpan<byte> finishReason)
    {
        // A tool call that was cut off by the token limit stays "length": it is not a valid call.
        if (SawToolCall && finishReason.SequenceEqual(FinishReasons.Stop))
        {
            finishReason = FinishReasons.ToolCalls;
        }

        var writer = BeginChunk(output);
        EndChunk(output, writer, finishReason);
        if (State.IncludeUsage)
        {
            writer = BeginData(output);
            WriteEnvelope(writer);
            writer.WriteStartArray("choices"u8);
            writer.WriteEndArray();
            Usage.WriteOpenAI(writer);
            writer.WriteEndObject();
            EndFrame(output);
        }

        output.Write("data: [DONE]\n\n"u8);
        Finished = true;
    }

    protected override void WriteStreamError(IBufferWriter<byte> output, string message, ReadOnlySpan<byte> type, string? code)
    {
        // openai-node (and the .NET SDK) raise an error for a data frame carrying an "error" key.
        var writer = BeginData(output);
        ErrorBodies.WriteOpenAI(writer, message, type, code);
        EndFrame(output);
    }

    protected void Ping(IBufferWriter<byte> output) => output.Write(": ping\n\n"u8);

    private void WriteEnvelope(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("id"u8, ChunkId);
        writer.WriteString("object"u8, "chat.completion.chunk"u8);
        writer.WriteNumber("created"u8, State.Created);
        writer.WriteString("model"u8, ChunkModel);
    }
}
