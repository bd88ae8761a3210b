using System.Buffers;
using System.Text.Json;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToAnthropic;

/// <summary>
/// Anthropic Messages stream → OpenAI chunk stream (the state machine of providers.md §6.3): tool calls are
/// keyed by the event's block index, the <c>input: {}</c> of a tool block start is never sent as arguments,
/// a tool without argument deltas gets <c>"{}"</c>, usage is set (cumulative), not added.
/// </summary>
internal sealed class AnthropicToOpenAIStream : OpenAIClientStream
{
    // Block index → tool-call index (or -1), and whether that tool block has had arguments.
    private int[] _toolOfBlock = [-1, -1, -1, -1];
    private bool[] _argumentsSeen = new bool[4];
    private byte[] _stopReason = [];
    private bool _started;

    public AnthropicToOpenAIStream(TranslationState state)
        : base(state) => ChunkModel = state.ClientModel;

    protected override void OnEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        var anthropic = AnthropicEvent.Read(data);
        switch (anthropic.Type)
        {
            case AnthropicEventType.MessageStart:
                OnMessageStart(data, anthropic, output);
                break;
            case AnthropicEventType.ContentBlockStart:
                OnBlockStart(data, anthropic, output);
                break;
            case AnthropicEventType.ContentBlockDelta:
                OnBlockDelta(data, anthropic, output);
                break;
            case AnthropicEventType.ContentBlockStop:
                if (ToolOf(anthropic.Index) is var tool and >= 0 && !_argumentsSeen[anthropic.Index])
                {
                    ToolArguments(output, tool, "{}"u8);
                }

                break;
            case AnthropicEventType.MessageDelta:
                Usage.ReadAnthropic(data, anthropic.Usage);
                if (AnthropicEvent.StopReason(data, anthropic.Delta) is { Length: > 0 } reason)
                {
                    _stopReason = reason.ToArray();
                }

                break;
            case AnthropicEventType.MessageStop:
                Complete(output, FinishReasons.FromAnthropic(_stopReason));
                break;
            case AnthropicEventType.Ping:
                Ping(output); // keeps idle intermediaries from closing a long thinking stream
                break;
            case AnthropicEventType.Error:
                var (message, code) = ErrorBodies.ReadUpstream(data, 500);
                Finished = true;
                WriteStreamError(output, message, "server_error"u8, code);
                break;
            default:
                break; // unknown event types: OpenAI streams have nowhere to carry them
        }
    }

    protected override void OnEnd(IBufferWriter<byte> output) =>
        Fail(output, "The upstream stream ended before the message was complete.");

    private void OnMessageStart(ReadOnlySpan<byte> data, in AnthropicEvent anthropic, IBufferWriter<byte> output)
    {
        if (_started)
        {
            return;
        }

        _started = true;
        var reader = anthropic.Message.Reader(data);
        if (!JsonRead.EnterObject(ref reader))
        {
            throw new JsonException("message_start without a message.");
        }

        while (JsonRead.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("id"u8))
            {
                reader.Read();
                ChunkId = reader.GetString() ?? ChunkId;
            }
            else if (reader.ValueTextEquals("model"u8))
            {
                reader.Read();
                ChunkModel = reader.GetString() ?? ChunkModel;
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                Usage.ReadAnthropic(data, JsonRead.PropertyValue(ref reader, anthropic.Message.Start));
            }
            else
            {
                JsonRead.SkipPropertyValue(ref reader);
            }
        }

        var writer = BeginChunk(output);
        writer.WriteString("content"u8, ""u8);
        EndChunk(output, writer);
    }

    private void OnBlockStart(ReadOnlySpan<byte> data, in AnthropicEvent anthropic, IBufferWriter<byte> output)
    {
        var block = AnthropicBlock.Read(data, anthropic.ContentBlock);
        if (block.IsToolUse)
        {
            using var id = new ScratchString(data, block.Id);
            using var name = new ScratchString(data, block.Name);
            var tool = StartToolCall(output, id.Span, name.Span);
            SetTool(anthropic.Index, tool);
        }
        else if (block.IsText && block.Text.Length > 2)
        {
            using var text = new ScratchString(data, block.Text);
            TextDelta(output, "content"u8, text.Span);
        }
    }

    private void OnBlockDelta(ReadOnlySpan<byte> data, in AnthropicEvent anthropic, IBufferWriter<byte> output)
    {
        var delta = AnthropicDelta.Read(data, anthropic.Delta);
        if (!delta.Value.IsPresent || delta.Value.Length <= 2)
        {
            return; // nothing to add (the first partial_json of a tool is often "")
        }

        using var value = new ScratchString(data, delta.Value);
        switch (delta.Kind)
        {
            case AnthropicDeltaKind.Text:
                TextDelta(output, "content"u8, value.Span);
                break;
            case AnthropicDeltaKind.Thinking:
                TextDelta(output, "reasoning_content"u8, value.Span);
                break;
            case AnthropicDeltaKind.InputJson when ToolOf(anthropic.Index) is var tool and >= 0:
                _argumentsSeen[anthropic.Index] = true;
                ToolArguments(output, tool, value.Span);
                break;
            default:
                break;
        }
    }

    private int ToolOf(int block) => block >= 0 && block < _toolOfBlock.Length ? _toolOfBlock[block] : -1;

    private void SetTool(int block, int tool)
    {
        if (block < 0 || block > 4096)
        {
            throw new JsonException("A content block index is out of range.");
        }

        if (block >= _toolOfBlock.Length)
        {
            var size = Math.Max(block + 1, _toolOfBlock.Length * 2);
            var grown = new int[size];
            grown.AsSpan().Fill(-1);
            _toolOfBlock.CopyTo(grown, 0);
            _toolOfBlock = grown;
            Array.Resize(ref _argumentsSeen, size);
        }

        _toolOfBlock[block] = tool;
    }
}
