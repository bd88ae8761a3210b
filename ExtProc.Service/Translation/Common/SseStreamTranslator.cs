using System.Buffers;
using System.Text.Json;
using System.Text.Unicode;
using ExtProc.Protocols.Sse;

namespace ExtProc.Translation.Common;

/// <summary>
/// The chunk loop every streamed direction shares: SSE events are cut out of arbitrary body chunks by
/// <see cref="SseEventReader"/> (bounded memory), handed to the direction one by one, and any broken
/// input (malformed JSON, an oversized event, a stream that ends early) ends the client stream with one
/// well-formed error in its own dialect. Handlers read an event completely before writing anything, so a
/// malformed event never leaves half an object in the output.
/// </summary>
internal abstract class SseStreamTranslator : IStreamTranslator
{
    // Fed to the SSE reader in slices, so one large body chunk full of small events never trips the per-event limit.
    private const int FeedSlice = 16 * 1024;

    private readonly SseEventReader _events;
    private Utf8JsonWriter? _writer;

    protected SseStreamTranslator(TranslationState state, int maxEventBytes = 1024 * 1024)
    {
        State = state;
        _events = new SseEventReader(maxEventBytes);
    }

    protected TranslationState State { get; }

    /// <summary>Set once the stream's last bytes (success or error) are written; later input is ignored.</summary>
    protected bool Finished { get; set; }

    public void Process(ReadOnlySequence<byte> chunk, bool endOfStream, IBufferWriter<byte> output)
    {
        if (Finished)
        {
            return;
        }

        try
        {
            foreach (var segment in chunk)
            {
                var span = segment.Span;
                while (!span.IsEmpty && !Finished)
                {
                    var piece = span[..Math.Min(span.Length, FeedSlice)];
                    span = span[piece.Length..];
                    if (!_events.Append(piece))
                    {
                        Fail(output, "An upstream stream event exceeded the size limit.");
                        return;
                    }

                    while (!Finished && _events.TryReadEvent(out var sseEvent))
                    {
                        // Checked up front so that no writer ever meets a broken sequence halfway through a frame.
                        if (!Utf8.IsValid(sseEvent.Data))
                        {
                            Fail(output, "The upstream sent a stream event that is not valid UTF-8.");
                            return;
                        }

                        OnEvent(sseEvent.EventName, sseEvent.Data, output);
                    }
                }
            }

            if (endOfStream && !Finished)
            {
                OnEnd(output);
                Finished = true;
            }
        }
        catch (JsonException)
        {
            Fail(output, "The upstream sent a malformed stream event.");
        }
        catch (FormatException)
        {
            Fail(output, "The upstream sent a malformed stream event.");
        }
    }

    public void Dispose()
    {
        _events.Dispose();
        _writer?.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>One complete upstream event.</summary>
    protected abstract void OnEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IBufferWriter<byte> output);

    /// <summary>The upstream body ended: finish the client stream, or report that it was cut short.</summary>
    protected abstract void OnEnd(IBufferWriter<byte> output);

    /// <summary>Writes an error in the client's stream dialect; the stream ends there.</summary>
    protected abstract void WriteStreamError(IBufferWriter<byte> output, string message, ReadOnlySpan<byte> type, string? code);

    protected void Fail(IBufferWriter<byte> output, string message)
    {
        if (!Finished)
        {
            Finished = true;
            WriteStreamError(output, message, "server_error"u8, TranslationErrors.UpstreamStreamBroken.Code);
        }
    }

    /// <summary>Starts an OpenAI-style frame (<c>data: </c>) and returns the writer for its JSON.</summary>
    protected Utf8JsonWriter BeginData(IBufferWriter<byte> output)
    {
        output.Write("data: "u8);
        return Writer(output);
    }

    /// <summary>Starts an Anthropic-style frame (<c>event: name</c> then <c>data: </c>).</summary>
    protected Utf8JsonWriter BeginEvent(IBufferWriter<byte> output, ReadOnlySpan<byte> name)
    {
        output.Write("event: "u8);
        output.Write(name);
        output.Write("\ndata: "u8);
        return Writer(output);
    }

    protected void EndFrame(IBufferWriter<byte> output)
    {
        _writer!.Flush();
        output.Write("\n\n"u8);
    }

    private Utf8JsonWriter Writer(IBufferWriter<byte> output)
    {
        if (_writer is null)
        {
            _writer = new Utf8JsonWriter(output, JsonOut.Options);
        }
        else
        {
            _writer.Reset(output);
        }

        return _writer;
    }
}
