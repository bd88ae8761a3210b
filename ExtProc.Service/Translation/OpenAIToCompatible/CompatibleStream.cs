using System.Buffers;
using System.Text.Json;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToCompatible;

/// <summary>
/// An OpenAI-compatible upstream's stream, passed event by event and re-serialised only when an event
/// breaks OpenAI's rules (providers.md §5.7): tool-call deltas without <c>index</c> or repeating their
/// <c>id</c>, finish reasons outside OpenAI's set or <c>stop</c> after tool calls, Azure's chunks with no
/// choices and no usage or a choice without a delta. <c>[DONE]</c> is written exactly once.
/// </summary>
internal sealed class CompatibleStream : OpenAIClientStream
{
    private readonly ToolCallKeys _keys = new();
    private readonly List<(int Number, bool IsNew)> _resolved = [];
    private bool _finishSeen;

    public CompatibleStream(TranslationState state)
        : base(state)
    {
    }

    protected override void OnEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        if (data.SequenceEqual("[DONE]"u8))
        {
            output.Write("data: [DONE]\n\n"u8);
            Finished = true;
            return;
        }

        var chunk = OpenAIChunk.Read(data);
        if (chunk.Error.IsPresent)
        {
            var (message, code) = ErrorBodies.ReadUpstream(data, 500);
            Finished = true;
            WriteStreamError(output, message, "server_error"u8, code);
            return;
        }

        if ((chunk.ChoiceCount == 0 && !IsObject(data, chunk.Usage)) || (chunk.HasChoice && !chunk.HasDelta && chunk.FinishReason.Kind(data) != JsonTokenType.String))
        {
            return; // Azure's prompt_filter_results / content_filter_results chunks: nothing a client can use
        }

        if (chunk.ChoiceCount == 0 && !State.IncludeUsage)
        {
            return; // the usage chunk of a stream whose client did not ask for it (limits asked, to settle)
        }

        var rewrite = ResolveToolCalls(data, chunk.ToolCalls);
        var finish = default(ReadOnlySpan<byte>);
        if (chunk.FinishReason.Kind(data) == JsonTokenType.String)
        {
            _finishSeen = true;
            using var reason = new ScratchString(data, chunk.FinishReason);
            finish = CompatibleResponse.Wanted(reason.Span, _keys.Count > 0);
            rewrite |= !reason.Span.SequenceEqual(finish);
        }

        if (!rewrite)
        {
            output.Write("data: "u8);
            output.Write(data);
            output.Write("\n\n"u8);
            return;
        }

        var writer = BeginData(output);
        WriteChunk(writer, data, finish);
        EndFrame(output);
    }

    protected override void OnEnd(IBufferWriter<byte> output)
    {
        if (_finishSeen)
        {
            output.Write("data: [DONE]\n\n"u8); // some compatible upstreams end without [DONE]
        }
        else
        {
            Fail(output, "The upstream stream ended before the response was complete.");
        }
    }

    private static bool IsObject(ReadOnlySpan<byte> data, JsonSlice value) => value.Kind(data) == JsonTokenType.StartObject;

    /// <summary>Numbers every tool-call delta of this event; true when any needs rewriting.</summary>
    private bool ResolveToolCalls(ReadOnlySpan<byte> data, JsonSlice toolCalls)
    {
        _resolved.Clear();
        if (toolCalls.Kind(data) != JsonTokenType.StartArray)
        {
            return false;
        }

        var rewrite = false;
        var reader = toolCalls.Reader(data);
        reader.Read();
        while (JsonRead.NextElement(ref reader))
        {
            var delta = OpenAIToolCallDelta.Read(ref reader, toolCalls.Start);
            var id = delta.Id.Kind(data) == JsonTokenType.String ? JsonRead.GetString(data, delta.Id) : null;
            var number = _keys.Resolve(delta.Index, id, out var isNew);
            _resolved.Add((number, isNew));
            rewrite |= delta.Index != number || (!isNew && delta.Id.IsPresent);
        }

        return rewrite;
    }

    private void WriteChunk(Utf8JsonWriter writer, ReadOnlySpan<byte> data, ReadOnlySpan<byte> finish)
    {
        var reader = new Utf8JsonReader(data, JsonRead.Options);
        reader.Read();
        writer.WriteStartObject();
        while (JsonRead.NextProperty(ref reader))
        {
            var escaped = reader.ValueIsEscaped ? reader.GetString() : null;
            var name = reader.ValueSpan;
            var isChoices = reader.ValueTextEquals("choices"u8);
            var value = JsonRead.PropertyValue(ref reader, 0);
            if (!isChoices || value.Kind(data) != JsonTokenType.StartArray)
            {
                JsonOut.Raw(writer, name, escaped, data, value);
                continue;
            }

            writer.WriteStartArray("choices"u8);
            var choices = value.Reader(data);
            choices.Read();
            var first = true;
            while (JsonRead.NextElement(ref choices))
            {
                var choice = JsonRead.Value(ref choices, value.Start);
                if (first)
                {
                    WriteChoice(writer, data, choice, finish);
                    first = false;
                }
                else
                {
                    writer.WriteRawValue(choice.In(data), skipInputValidation: true);
                }
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }

    private void WriteChoice(Utf8JsonWriter writer, ReadOnlySpan<byte> data, JsonSlice choice, ReadOnlySpan<byte> finish)
    {
        writer.WriteStartObject();
        var reader = choice.Reader(data);
        reader.Read();
        while (JsonRead.NextProperty(ref reader))
        {
            var escaped = reader.ValueIsEscaped ? reader.GetString() : null;
            var name = reader.ValueSpan;
            var isFinish = reader.ValueTextEquals("finish_reason"u8);
            var isDelta = reader.ValueTextEquals("delta"u8);
            var value = JsonRead.PropertyValue(ref reader, choice.Start);
            if (isFinish && !finish.IsEmpty)
            {
                writer.WriteString("finish_reason"u8, finish);
            }
            else if (isDelta && value.Kind(data) == JsonTokenType.StartObject)
            {
                WriteDelta(writer, data, value);
            }
            else
            {
                JsonOut.Raw(writer, name, escaped, data, value);
            }
        }

        writer.WriteEndObject();
    }

    private void WriteDelta(Utf8JsonWriter writer, ReadOnlySpan<byte> data, JsonSlice delta)
    {
        writer.WriteStartObject("delta"u8);
        var reader = delta.Reader(data);
        reader.Read();
        while (JsonRead.NextProperty(ref reader))
        {
            var escaped = reader.ValueIsEscaped ? reader.GetString() : null;
            var name = reader.ValueSpan;
            var isToolCalls = reader.ValueTextEquals("tool_calls"u8);
            var value = JsonRead.PropertyValue(ref reader, delta.Start);
            if (!isToolCalls || value.Kind(data) != JsonTokenType.StartArray)
            {
                JsonOut.Raw(writer, name, escaped, data, value);
                continue;
            }

            writer.WriteStartArray("tool_calls"u8);
            var calls = value.Reader(data);
            calls.Read();
            var position = 0;
            while (JsonRead.NextElement(ref calls))
            {
                var call = OpenAIToolCallDelta.Read(ref calls, value.Start);
                var (number, isNew) = _resolved[position++];
                writer.WriteStartObject();
                writer.WriteNumber("index"u8, number);
                if (isNew)
                {
                    if (call.Id.IsPresent)
                    {
                        JsonOut.Raw(writer, "id"u8, data, call.Id);
                    }
                    else
                    {
                        writer.WriteString("id"u8, ToolNaming.SynthesizedCallId(State.RequestId, number));
                    }

                    writer.WriteString("type"u8, "function"u8);
                }

                writer.WriteStartObject("function"u8);
                if (isNew && call.Name.IsPresent)
                {
                    JsonOut.Raw(writer, "name"u8, data, call.Name);
                }

                if (call.Arguments.IsPresent)
                {
                    JsonOut.Raw(writer, "arguments"u8, data, call.Arguments);
                }

                writer.WriteEndObject();
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }
}
