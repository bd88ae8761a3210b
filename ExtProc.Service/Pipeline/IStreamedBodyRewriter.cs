namespace ExtProc.Pipeline;

/// <summary>
/// Rewrites a STREAMED response body chunk by chunk (an SSE stream event by event): each chunk is answered
/// at once, never gathered, so a stream that waits on the client (elicitation) keeps flowing.
/// </summary>
internal interface IStreamedBodyRewriter
{
    /// <summary>False to forward the chunk unchanged; true with the bytes to forward instead (may be empty).</summary>
    bool TryRewrite(ReadOnlyMemory<byte> chunk, bool endOfStream, out ReadOnlyMemory<byte> replacement);
}
