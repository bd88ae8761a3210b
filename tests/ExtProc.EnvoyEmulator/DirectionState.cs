using Envoy.Extensions.Filters.Http.ExtProc.V3;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;

namespace ExtProc.EnvoyEmulator;

/// <summary>Which reply the direction waits for (Envoy's ProcessorState::CallbackState).</summary>
internal enum CallbackState
{
    Idle,
    HeadersCallback,
    BufferedBodyCallback,
    StreamedBodyCallback,
    BufferedPartialBodyCallback,
    TrailersCallback,
}

/// <summary>One direction's processor state (spec §2.1).</summary>
internal sealed class DirectionState(bool isRequest)
{
    public bool IsRequest { get; } = isRequest;

    public bool SendHeaders { get; set; }

    public bool SendTrailers { get; set; }

    public BodySendMode BodyMode { get; set; }

    public CallbackState State { get; set; }

    public bool Started { get; set; }

    /// <summary>The filter took charge of these headers (not pass-through).</summary>
    public bool Engaged { get; set; }

    public HttpHeaderList? Headers { get; set; }

    public bool HeadersEndStream { get; set; }

    /// <summary>Headers were passed on to the next stage (router / client).</summary>
    public bool HeadersContinued { get; set; }

    /// <summary>The HTTP message ended (END_STREAM data or trailers arrived).</summary>
    public bool EndStreamSeen { get; set; }

    public HttpHeaderList? Trailers { get; set; }

    /// <summary>Trailers arrived and are still held by the filter.</summary>
    public bool TrailersHeld { get; set; }

    public bool TrailersSentToServer { get; set; }

    /// <summary>Data held by the filter (BUFFERED body, data arriving while headers are held, partial queue).</summary>
    public MemoryStream Buffer { get; } = new();

    /// <summary>STREAMED chunks sent and awaiting their replies, in order.</summary>
    public Queue<(byte[] Data, bool EndStream)> Chunks { get; } = new();

    /// <summary>Size of the BUFFERED_PARTIAL part sent to the server.</summary>
    public int PartialSentLength { get; set; }

    public bool CompleteBodyAvailable { get; set; }

    public bool PartialProcessed { get; set; }

    /// <summary>CONTINUE_AND_REPLACE replaced the body: later client data is dropped.</summary>
    public bool BodyReplaced { get; set; }

    public bool DuplexBodyStarted { get; set; }

    public bool DuplexEnded { get; set; }

    public bool AttributesSent { get; set; }

    /// <summary>The direction's output (towards upstream or client) has ended.</summary>
    public bool OutputEnded { get; set; }

    public ITimer? Timer { get; set; }

    public int TimerGen { get; set; }

    public bool OverrideUsed { get; set; }

    /// <summary>The last reply handled for this direction was a BUFFERED/BUFFERED_PARTIAL body reply.</summary>
    public bool LastReplyWasBuffered { get; set; }

    public void ApplyMode(ProcessingMode mode)
    {
        if (IsRequest)
        {
            SendHeaders = mode.RequestHeaderMode != HeaderSendMode.Skip;
            SendTrailers = mode.RequestTrailerMode == HeaderSendMode.Send;
            BodyMode = mode.RequestBodyMode;
        }
        else
        {
            SendHeaders = mode.ResponseHeaderMode != HeaderSendMode.Skip;
            SendTrailers = mode.ResponseTrailerMode == HeaderSendMode.Send;
            BodyMode = mode.ResponseBodyMode;
        }
    }

    /// <summary>Nothing at all would be sent for this direction.</summary>
    public bool NothingConfigured => !SendHeaders && !SendTrailers && BodyMode == BodySendMode.None;

    /// <summary>Envoy strips content-length when the body may change size without the server owning it.</summary>
    public bool RemovesContentLength =>
        BodyMode is BodySendMode.Streamed or BodySendMode.BufferedPartial or BodySendMode.FullDuplexStreamed
        || (BodyMode == BodySendMode.Buffered && !SendHeaders);

    public byte[] TakeBuffer()
    {
        var data = Buffer.ToArray();
        Buffer.SetLength(0);
        return data;
    }

    /// <summary>Whether this direction may still send a message to the server.</summary>
    public bool MaySendMore()
    {
        if (State != CallbackState.Idle || Chunks.Count > 0)
        {
            return true;
        }

        if (!Started)
        {
            return !NothingConfigured;
        }

        if (BodyMode == BodySendMode.FullDuplexStreamed && !DuplexEnded && !OutputEnded)
        {
            return true;
        }

        if (EndStreamSeen)
        {
            // Held trailers or buffered body may still go out.
            return (TrailersHeld && SendTrailers && !TrailersSentToServer) || Buffer.Length > 0;
        }

        var bodyPossible = BodyMode != BodySendMode.None && !BodyReplaced && !PartialProcessed;
        return bodyPossible || (SendTrailers && !BodyReplaced);
    }
}
