using System.Buffers;
using ExtProc.Pipeline.Errors;
using ExtProc.Protocols;

namespace ExtProc.Translation;

/// <summary>
/// The quirks of an OpenAI-compatible upstream. <see cref="Standard"/> is OpenAI itself (or any upstream
/// that speaks its wire format without known deviations).
/// </summary>
internal enum UpstreamDialect
{
    Standard,
    DeepSeek,
    Qwen,
    Mistral,
    Azure,
}

/// <summary>What the routing stage knows about the request when it asks for a translation.</summary>
/// <param name="UpstreamModel">The model name the upstream expects; null keeps the client's.</param>
/// <param name="RequestId">Seeds the ids we must synthesise (Gemini tool calls), so they are stable per request.</param>
/// <param name="CreatedUnixSeconds">The <c>created</c> stamp of synthesised OpenAI responses.</param>
/// <param name="DefaultMaxTokens">Sent where the upstream requires a token limit and the client gave none.</param>
internal readonly record struct RequestTranslationInput(
    string? UpstreamModel,
    string RequestId,
    long CreatedUnixSeconds,
    int DefaultMaxTokens = 4096);

internal enum TranslationStatus
{
    /// <summary>The original bytes are what the upstream (or client) should see; nothing was written.</summary>
    Unchanged,

    /// <summary>The output holds the whole replacement document.</summary>
    Rewritten,

    /// <summary>The request cannot be carried to this upstream; answer the client with <see cref="TranslationResult.Error"/>.</summary>
    Failed,
}

/// <summary>A translation failure: the error to render in the client's dialect (see ErrorResponses).</summary>
internal readonly record struct TranslationError(GatewayError Error, string Message);

/// <summary>
/// The outcome of one translation call. For responses, <see cref="HttpStatus"/> is the status the client
/// should see: the upstream's own, or 502 when the upstream answered 2xx with something unreadable.
/// </summary>
internal readonly record struct TranslationResult(TranslationStatus Status, int HttpStatus, TranslationError? Error)
{
    public static TranslationResult Unchanged(int status = 200) => new(TranslationStatus.Unchanged, status, null);

    public static TranslationResult Rewritten(int status = 200) => new(TranslationStatus.Rewritten, status, null);

    public static TranslationResult Fail(GatewayError error, string message) =>
        new(TranslationStatus.Failed, error.Status, new TranslationError(error, message));
}

/// <summary>Stable error codes of translation (part of our public contract).</summary>
internal static class TranslationErrors
{
    /// <summary>The request uses something the upstream's format cannot carry (audio input, n &gt; 1, server tools).</summary>
    public static readonly GatewayError Unsupported = new(400, "translation_unsupported");

    /// <summary>The request body is not the JSON its schema requires.</summary>
    public static readonly GatewayError InvalidBody = new(400, "translation_invalid_body");

    /// <summary>The upstream answered 2xx with a body that is not its documented format.</summary>
    public static readonly GatewayError InvalidUpstreamResponse = new(502, "upstream_invalid_response");

    /// <summary>The upstream stream ended, broke or grew an event past the limit before it finished.</summary>
    public static readonly GatewayError UpstreamStreamBroken = new(502, "upstream_stream_broken");
}

/// <summary>
/// One client schema → upstream schema direction. Stateless and shared; everything a response needs from
/// its request lives in the <see cref="TranslationState"/> that <see cref="TranslateRequest"/> returns.
/// </summary>
internal abstract class TranslationDirection
{
    public abstract ProtocolKind Client { get; }

    public abstract ProtocolKind Upstream { get; }

    public abstract UpstreamDialect Dialect { get; }

    /// <summary>Translates a client request body into the upstream's; <paramref name="state"/> is null only on failure.</summary>
    public abstract TranslationResult TranslateRequest(
        ReadOnlySequence<byte> clientBody,
        in RequestTranslationInput input,
        IBufferWriter<byte> output,
        out TranslationState? state);

    /// <summary>Translates a whole (buffered) upstream response, error bodies included, into the client's schema.</summary>
    public abstract TranslationResult TranslateResponse(
        ReadOnlySequence<byte> upstreamBody,
        int status,
        TranslationState state,
        IBufferWriter<byte> output);

    /// <summary>A translator for one streamed (text/event-stream) response.</summary>
    public abstract IStreamTranslator CreateStreamTranslator(TranslationState state);
}

/// <summary>
/// Translates one SSE response as its body chunks arrive. Correct at any chunk boundary; memory is
/// bounded by the largest event. Not thread-safe.
/// </summary>
internal interface IStreamTranslator : IDisposable
{
    /// <summary>
    /// Consumes a chunk and writes whatever client-side bytes it completes (possibly none: the caller must
    /// still send an empty body mutation). After a terminal error has been written, further input is ignored.
    /// </summary>
    void Process(ReadOnlySequence<byte> chunk, bool endOfStream, IBufferWriter<byte> output);
}
