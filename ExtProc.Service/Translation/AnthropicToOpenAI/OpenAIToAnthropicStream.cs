using System.Buffers;
using System.Text.Json;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.AnthropicToOpenAI;

/// <summary>
/// OpenAI chunk stream → Anthropic event stream (providers.md §6.6): every frame named (the SDK dispatches
/// on <c>event:</c>), blocks opened lazily and closed before the next kind starts, block indices counted
/// by us (not OpenAI's tool index), input usage reported in message_delta because OpenAI gives it last.
/// </summary>
internal sealed class OpenAIToAnthropicStream : SseStreamTranslator
{
    private enum Block
    {
        None,
        Text,
        Thinking,
        Tool,
    }

    private readonly ToolCallKeys _keys = new();
    private readonly List<int> _blockOfTool = [];
    private TokenUsage _usage;
    private Block _open;
    private int _openBlock = -1;
    private int _nextBlock;
    private bool _started;
    private byte[] _finish = [];
    private string _id = "msg_";
    private string _model;

    public OpenAIToAnthropicStream(TranslationState state)
        : base(state) => _model = state.UpstreamModel;

    protected override void OnEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        if (data.SequenceEqual("[DONE]"u8))
        {
            Complete(output);
            return;
        }

        var chunk = OpenAIChunk.Read(data);
        if (chunk.Error.IsPresent || eventName.SequenceEqual("error"u8))
        {
            var (message, _) = ErrorBodies.ReadUpstream(data, 500);
            Finished = true;
            WriteStreamError(output, message, "api_error"u8, null);
            return;
        }

        Start(output, data, chunk);
        if (IsText(data, chunk.ReasoningContent))
        {
            Delta(output, data, Block.Thinking, "thinking_delta"u8, "thinking"u8, chunk.ReasoningContent);
        }

        if (IsText(data, chunk.Content))
        {
            Delta(output, data, Block.Text, "text_delta"u8, "text"u8, chunk.Content);
        }

        if (IsText(data, chunk.Refusal))
        {
            Delta(output, data, Block.Text, "text_delta"u8, "text"u8, chunk.Refusal);
        }

        if (chunk.ToolCalls.Kind(data) == JsonTokenType.StartArray)
        {
            var reader = chunk.ToolCalls.Reader(data);
            reader.Read();
            while (JsonRead.NextElement(ref reader))
            {
                ToolDelta(output, data, OpenAIToolCallDelta.Read(ref reader, chunk.ToolCalls.Start));
            }
        }

        if (chunk.FinishReason.Kind(data) == JsonTokenType.String)
        {
            using var reason = new ScratchString(data, chunk.FinishReason);
            _finish = reason.Span.ToArray();
        }

        _usage.ReadOpenAI(data, chunk.Usage);
    }

    protected override void OnEnd(IBufferWriter<byte> output)
    {
        // Some OpenAI-compatible upstreams end without [DONE]; a finish reason is enough to call it complete.
        if (_finish.Length > 0)
        {
            Complete(output);
        }
        else
        {
            Fail(output, "The upstream stream ended before the message was complete.");
        }
    }

    protected override void WriteStreamError(IBufferWriter<byte> output, string message, ReadOnlySpan<byte> type, string? code)
    {
        var writer = BeginEvent(output, "error"u8);
        ErrorBodies.WriteAnthropic(writer, "api_error"u8, message);
        EndFrame(output);
    }

    private static bool IsText(ReadOnlySpan<byte> data, JsonSlice value) => value.Kind(data) == JsonTokenType.String && value.Length > 2;

    private void Start(IBufferWriter<byte> output, ReadOnlySpan<byte> data, in OpenAIChunk chunk)
    {
        if (_started)
        {
            return;
        }

        if (chunk.Id.Kind(data) == JsonTokenType.String && chunk.Id.Length > 2)
        {
            var id = JsonRead.GetString(data, chunk.Id)!;
            _id = id.StartsWith("msg_", StringComparison.Ordinal) ? id : "msg_" + id;
        }

        if (chunk.Model.Kind(data) == JsonTokenType.String && chunk.Model.Length > 2)
        {
            _model = JsonRead.GetString(data, chunk.Model)!;
        }

        WriteMessageStart(output);
    }

    private void WriteMessageStart(IBufferWriter<byte> output)
    {
        _started = true;
        var writer = BeginEvent(output, "message_start"u8);
        writer.WriteStartObject();
        writer.WriteString("type"u8, "message_start"u8);
        writer.WriteStartObject("message"u8);
        writer.WriteString("id"u8, _id);
        writer.WriteString("type"u8, "message"u8);
        writer.WriteString("role"u8, "assistant"u8);
        writer.WriteString("model"u8, _model);
        writer.WriteStartArray("content"u8);
        writer.WriteEndArray();
        writer.WriteNull("stop_reason"u8);
        writer.WriteNull("stop_sequence"u8);
        writer.WriteStartObject("usage"u8);
        writer.WriteNumber("input_tokens"u8, 0);
        writer.WriteNumber("output_tokens"u8, 0);
        writer.WriteEndObject();
        writer.WriteEndObject();
        writer.WriteEndObject();
        EndFrame(output);
    }

    private void Delta(IBufferWriter<byte> output, ReadOnlySpan<byte> data, Block kind, ReadOnlySpan<byte> deltaType, ReadOnlySpan<byte> field, JsonSlice value)
    {
        if (_open != kind)
        {
            CloseBlock(output);
            _open = kind;
            _openBlock = _nextBlock++;
            var start = BeginEvent(output, "content_block_start"u8);
            start.WriteStartObject();
            start.WriteString("type"u8, "content_block_start"u8);
            start.WriteNumber("index"u8, _openBlock);
            start.WriteStartObject("content_block"u8);
            if (kind == Block.Text)
            {
                start.WriteString("type"u8, "text"u8);
                start.WriteString("text"u8, ""u8);
            }
            else
            {
                start.WriteString("type"u8, "thinking"u8);
                start.WriteString("thinking"u8, ""u8);
                start.WriteString("signature"u8, ""u8);
            }

            start.WriteEndObject();
            start.WriteEndObject();
            EndFrame(output);
        }

        var writer = BeginEvent(output, "content_block_delta"u8);
        writer.WriteStartObject();
        writer.WriteString("type"u8, "content_block_delta"u8);
        writer.WriteNumber("index"u8, _openBlock);
        writer.WriteStartObject("delta"u8);
        writer.WriteString("type"u8, deltaType);
        JsonOut.Raw(writer, field, data, value);
        writer.WriteEndObject();
        writer.WriteEndObject();
        EndFrame(output);
    }

    private void ToolDelta(IBufferWriter<byte> output, ReadOnlySpan<byte> data, in OpenAIToolCallDelta delta)
    {
        var id = delta.Id.Kind(data) == JsonTokenType.String ? JsonRead.GetString(data, delta.Id) : null;
        var tool = _keys.Resolve(delta.Index, id, out var isNew);
        if (isNew)
        {
            CloseBlock(output);
            _open = Block.Tool;
            _openBlock = _nextBlock++;
            _blockOfTool.Add(_openBlock);
            var start = BeginEvent(output, "content_block_start"u8);
            start.WriteStartObject();
            start.WriteString("type"u8, "content_block_start"u8);
            start.WriteNumber("index"u8, _openBlock);
            start.WriteStartObject("content_block"u8);
            start.WriteString("type"u8, "tool_use"u8);
            start.WriteString("id"u8, id ?? ToolNaming.SynthesizedCallId(State.RequestId, tool));
            using (var name = new ScratchString(data, delta.Name))
            {
                if (State.RestoreToolName(name.Span) is { } original)
                {
                    start.WriteString("name"u8, original);
                }
                else
                {
                    start.WriteString("name"u8, name.Span);
                }
            }

            start.WriteStartObject("input"u8);
            start.WriteEndObject();
            start.WriteEndObject();
            start.WriteEndObject();
            EndFrame(output);
        }

        if (delta.Arguments.Kind(data) != JsonTokenType.String || delta.Arguments.Length <= 2)
        {
            return;
        }

        var writer = BeginEvent(output, "content_block_delta"u8);
        writer.WriteStartObject();
        writer.WriteString("type"u8, "content_block_delta"u8);
        writer.WriteNumber("index"u8, _blockOfTool[tool]);
        writer.WriteStartObject("delta"u8);
        writer.WriteString("type"u8, "input_json_delta"u8);
        JsonOut.Raw(writer, "partial_json"u8, data, delta.Arguments);
        writer.WriteEndObject();
        writer.WriteEndObject();
        EndFrame(output);
    }

    private void CloseBlock(IBufferWriter<byte> output)
    {
        if (_open == Block.None)
        {
            return;
        }

        var writer = BeginEvent(output, "content_block_stop"u8);
        writer.WriteStartObject();
        writer.WriteString("type"u8, "content_block_stop"u8);
        writer.WriteNumber("index"u8, _openBlock);
        writer.WriteEndObject();
        EndFrame(output);
        _open = Block.None;
    }

    private void Complete(IBufferWriter<byte> output)
    {
        if (!_started)
        {
            WriteMessageStart(output);
        }

        CloseBlock(output);
        var finish = FinishReasons.ToAnthropic(_finish);
        if (_keys.Count > 0 && !finish.SequenceEqual("max_tokens"u8))
        {
            finish = "tool_use"u8;
        }

        var writer = BeginEvent(output, "message_delta"u8);
        writer.WriteStartObject();
        writer.WriteString("type"u8, "message_delta"u8);
        writer.WriteStartObject("delta"u8);
        writer.WriteString("stop_reason"u8, finish);
        writer.WriteNull("stop_sequence"u8);
        writer.WriteEndObject();
        _usage.WriteAnthropic(writer);
        writer.WriteEndObject();
        EndFrame(output);

        writer = BeginEvent(output, "message_stop"u8);
        writer.WriteStartObject();
        writer.WriteString("type"u8, "message_stop"u8);
        writer.WriteEndObject();
        EndFrame(output);
        Finished = true;
    }
}
