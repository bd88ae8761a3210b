using System.Buffers;
using System.Text.Json;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToGemini;

/// <summary>
/// Gemini <c>streamGenerateContent?alt=sse</c> → OpenAI chunks: each event is a whole response fragment;
/// function calls arrive complete, so each becomes one delta with id, name and full arguments at the next
/// index of the response's counter; the finish reason may come in a later event than the call and is
/// reported once at the end (as <c>tool_calls</c> when a call went out); usage is cumulative (last wins).
/// </summary>
internal sealed class GeminiToOpenAIStream : OpenAIClientStream
{
    private byte[] _finish = [];
    private bool _blocked;
    private bool _idSet;

    public GeminiToOpenAIStream(TranslationState state)
        : base(state)
    {
        ChunkId = "chatcmpl-" + state.RequestId;
        ChunkModel = state.UpstreamModel;
    }

    protected override void OnEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        var candidates = default(GeminiCandidates);
        try
        {
            OnEvent(data, ref candidates, output);
        }
        finally
        {
            candidates.Dispose();
        }
    }

    private void OnEvent(ReadOnlySpan<byte> data, ref GeminiCandidates candidates, IBufferWriter<byte> output)
    {
        var response = GeminiResponse.Read(data, ref candidates);
        if (response.Error.IsPresent)
        {
            var (message, code) = ErrorBodies.ReadUpstream(data, 500);
            Finished = true;
            WriteStreamError(output, message, "server_error"u8, code);
            return;
        }

        if (candidates.Malformed)
        {
            throw new JsonException("A candidate or part is malformed.");
        }

        if (!_idSet)
        {
            _idSet = true;
            if (response.ResponseId.Kind(data) == JsonTokenType.String && response.ResponseId.Length > 2)
            {
                ChunkId = JsonRead.GetString(data, response.ResponseId)!;
            }

            if (response.ModelVersion.Kind(data) == JsonTokenType.String && response.ModelVersion.Length > 2)
            {
                ChunkModel = JsonRead.GetString(data, response.ModelVersion)!;
            }
        }

        _blocked |= response.BlockReason.IsPresent;
        Usage.ReadGemini(data, response.UsageMetadata);
        for (var i = 0; i < candidates.Count; i++)
        {
            ref readonly var candidate = ref candidates.Candidate(i);
            if (candidate.FinishReason.Kind(data) == JsonTokenType.String && candidate.Index == 0)
            {
                using var reason = new ScratchString(data, candidate.FinishReason);
                _finish = reason.Span.ToArray();
            }

            for (var j = 0; j < candidate.PartCount; j++)
            {
                ref readonly var part = ref candidates.Part(candidate.FirstPart + j);
                if (part.IsFunctionCall)
                {
                    var index = NextToolIndex++;
                    SawToolCall = true;
                    var writer = BeginChunk(output, candidate.Index);
                    writer.WriteStartArray("tool_calls"u8);
                    GeminiResponseReader.WriteToolCall(writer, data, part, State, index, index);
                    writer.WriteEndArray();
                    EndChunk(output, writer);
                }
                else if (part.Text.Kind(data) == JsonTokenType.String && part.Text.Length > 2)
                {
                    using var text = new ScratchString(data, part.Text);
                    TextDelta(output, part.Thought ? "reasoning_content"u8 : "content"u8, text.Span, candidate.Index);
                }
            }
        }
    }

    protected override void OnEnd(IBufferWriter<byte> output)
    {
        if (_finish.Length > 0)
        {
            Complete(output, FinishReasons.FromGemini(_finish));
        }
        else if (_blocked)
        {
            Complete(output, FinishReasons.ContentFilter);
        }
        else
        {
            Fail(output, "The upstream stream ended before the response was complete.");
        }
    }
}
