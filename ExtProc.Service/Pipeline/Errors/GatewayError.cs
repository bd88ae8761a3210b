namespace ExtProc.Pipeline.Errors;

/// <summary>
/// Every error ExtProc answers with: HTTP status and a stable machine code. Codes are part of our
/// public contract (clients and dashboards match on them); never rename one.
/// </summary>
internal sealed record GatewayError(int Status, string Code)
{
    public static readonly GatewayError InvalidRequest = new(400, "invalid_request");
    public static readonly GatewayError InvalidHeader = new(400, "invalid_header");
    public static readonly GatewayError BodyTooLarge = new(413, "body_too_large");
    public static readonly GatewayError UnsupportedMediaType = new(415, "unsupported_media_type");
    public static readonly GatewayError Internal = new(500, "gateway_internal_error");
    public static readonly GatewayError UpstreamBodyTooLarge = new(502, "upstream_body_too_large");
}
