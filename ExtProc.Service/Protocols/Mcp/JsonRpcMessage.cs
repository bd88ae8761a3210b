namespace ExtProc.Protocols.Mcp;

/// <summary>The JSON-RPC message kinds MCP uses.</summary>
internal enum JsonRpcKind
{
    Request,
    Notification,
    Response,
}

/// <summary>
/// What ExtProc needs of one MCP JSON-RPC message: its kind, id (kept as its JSON text so an error can
/// echo it exactly), method, and the target of the methods policy acts on.
/// </summary>
internal sealed class JsonRpcMessage
{
    public JsonRpcKind Kind { get; set; }

    /// <summary>The id as JSON (<c>7</c> or <c>"abc"</c>); null for notifications.</summary>
    public string? IdJson { get; set; }

    public string? Method { get; set; }

    /// <summary>params.name (tools/call, prompts/get) or params.uri (resources/read).</summary>
    public string? Target { get; set; }

    /// <summary>Bytes of params.arguments, for argument size limits.</summary>
    public int ArgumentsBytes { get; set; }

    /// <summary>params.protocolVersion of an initialize request.</summary>
    public string? ProtocolVersion { get; set; }
}
