using ExtProc.Pipeline;
using ExtProc.Pipeline.Errors;

namespace ExtProc.Stages.Mcp;

/// <summary>The errors of MCP governance, as JSON-RPC errors echoing the request id (mcp.md §1.2).</summary>
internal static class McpErrors
{
    public const int MethodNotFound = -32601;
    public const int InvalidParams = -32602;
    public const int InternalError = -32603;
    public const int SessionNotFound = -32001;
    public const int ResourceNotFound = -32002;
    public const int HeaderMismatch = -32020;

    // A refused tool looks like an unknown one, so a caller cannot probe which tools exist.
    public static readonly GatewayError UnknownTool = new(200, "unknown_tool");
    public static readonly GatewayError MethodNotAllowed = new(200, "method_not_found");
    public static readonly GatewayError ArgumentsTooLarge = new(413, "mcp_arguments_too_large");
    public static readonly GatewayError SessionUnknown = new(404, "mcp_session_not_found");
    public static readonly GatewayError InvalidSessionId = new(400, "mcp_invalid_session_id");
    public static readonly GatewayError DuplicateInFlight = new(409, "mcp_duplicate_request_id");
    public static readonly GatewayError UnsupportedVersion = new(400, "mcp_unsupported_protocol_version");
    public static readonly GatewayError HeaderBodyMismatch = new(400, "mcp_header_mismatch");
    public static readonly GatewayError WrongDirection = new(400, "mcp_wrong_direction");
    public static readonly GatewayError SessionReinitialize = new(400, "mcp_session_already_initialized");
    public static readonly GatewayError ForbiddenHost = new(403, "mcp_forbidden_host");
    public static readonly GatewayError UpstreamInvalid = new(502, "mcp_upstream_invalid");

    public static LocalResponse Create(ProcessingContext context, GatewayError error, int rpcCode, string message, string? idJson = null)
    {
        var response = JsonRpcErrors.Create(context, error, rpcCode, message, idJson);
        if (error.Status == 200)
        {
            // Unknown tools and methods answer as a server would: no gateway marker to tell them apart.
            response.Headers.Clear();
        }

        return response;
    }

    /// <summary>A notification the gateway drops: accepted (202) with no body, as servers answer notifications.</summary>
    public static LocalResponse Dropped() => new(202, ReadOnlyMemory<byte>.Empty, "application/json", "extproc_mcp_notification_dropped");
}
