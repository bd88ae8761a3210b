using ExtProc.Pipeline;
using ExtProc.Pipeline.Errors;
using ExtProc.Protocols;

namespace ExtProc.Stages.Identify;

/// <summary>
/// First stage: says which protocol a request speaks, from method + path + content type. Everything
/// after it (auth, limits, parsing, errors) depends on that answer. Traffic we do not govern is let
/// through at the cost of this one round trip.
/// </summary>
internal sealed class ProtocolIdentificationStage : Stage
{
    private readonly ProtocolClassifier _classifier;

    public ProtocolIdentificationStage(ProtocolClassifier classifier) => _classifier = classifier;

    public override string Name => "identify";

    public override ValueTask<StageResult> OnRequestHeadersAsync(ProcessingContext context)
    {
        var headers = context.RequestHeaders;
        if (!headers.TryGetSingle(":path", out var path) || !headers.TryGetSingle(":method", out var method))
        {
            return RespondAsync(context, GatewayError.InvalidHeader, "The request must carry exactly one :method and one :path.");
        }

        var protocol = _classifier.Classify(path.Span);
        context.Protocol = protocol;
        if (protocol == ProtocolKind.Other)
        {
            context.Governed = false;
            return StageResult.ContinueTask;
        }

        if (!method.Span.SequenceEqual("POST"u8))
        {
            // GET (MCP event stream, stored-completion listings) and DELETE (MCP session end) carry no
            // body to read; later stages still govern them by their headers.
            return StageResult.ContinueTask;
        }

        if (!headers.TryGetSingle("content-type", out var contentType))
        {
            // One scan on the common path; telling "absent" from "repeated" is only needed on refusal.
            return headers.Contains("content-type")
                ? RespondAsync(context, GatewayError.InvalidHeader, "The request carries more than one Content-Type header.")
                : RespondAsync(context, GatewayError.UnsupportedMediaType, "This endpoint accepts only Content-Type: application/json.");
        }

        if (!IsJson(contentType.Span))
        {
            return RespondAsync(context, GatewayError.UnsupportedMediaType, "This endpoint accepts only Content-Type: application/json.");
        }

        // A compressed body cannot be inspected without a decompressor with output caps (faults.md J14): refuse it
        // rather than judge bytes we cannot read.
        if (headers.Contains("content-encoding") && !IsIdentityEncoding(headers))
        {
            return RespondAsync(context, GatewayError.UnsupportedEncoding, "This endpoint accepts only uncompressed request bodies (no Content-Encoding).");
        }

        context.RequestBody.Needed = true;
        return StageResult.ContinueTask;
    }

    private static bool IsIdentityEncoding(HttpHeaderList headers) =>
        headers.TryGetSingle("content-encoding", out var value) && System.Text.Ascii.EqualsIgnoreCase(value.Span.Trim((byte)' '), "identity"u8);

    /// <summary>application/json, case-insensitive, parameters such as charset allowed.</summary>
    internal static bool IsJson(ReadOnlySpan<byte> contentType)
    {
        var semicolon = contentType.IndexOf((byte)';');
        var mediaType = (semicolon >= 0 ? contentType[..semicolon] : contentType).Trim((byte)' ');
        return System.Text.Ascii.EqualsIgnoreCase(mediaType, "application/json"u8);
    }

    private static ValueTask<StageResult> RespondAsync(ProcessingContext context, GatewayError error, string message) =>
        new(StageResult.Respond(ErrorResponses.Create(context, error, message)));
}
