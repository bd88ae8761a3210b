namespace ExtProc.Observability;

/// <summary>
/// Log events of MCP governance. Session ids are secrets: only a short prefix of their hash is logged;
/// bodies and arguments never are.
/// </summary>
internal static partial class McpLog
{
    [LoggerMessage(EventId = EventIds.McpDenied, EventName = "McpDenied", Level = LogLevel.Debug,
        Message = "MCP request {RequestId} of tenant {Tenant} refused: {Code} (method {Method}).")]
    public static partial void Denied(ILogger logger, string requestId, string tenant, string code, string? method);

    [LoggerMessage(EventId = EventIds.McpForeignSession, EventName = "McpForeignSession", Level = LogLevel.Warning,
        Message = "MCP request {RequestId}: tenant {Tenant} presented session {SessionHash} bound to another identity; answered as unknown.")]
    public static partial void ForeignSession(ILogger logger, string requestId, string tenant, string sessionHash);

    [LoggerMessage(EventId = EventIds.McpToolChanged, EventName = "McpToolChanged", Level = LogLevel.Warning,
        Message = "MCP tool {Tool} of server {Server} changed its definition since it was first listed to tenant {Tenant}; blocked: {Blocked}.")]
    public static partial void ToolChanged(ILogger logger, string tool, string server, string tenant, bool blocked);

    [LoggerMessage(EventId = EventIds.LlmToolCallFlagged, EventName = "LlmToolCallFlagged", Level = LogLevel.Warning,
        Message = "Request {RequestId} of tenant {Tenant}: the model called tool {Tool}, which the tenant may not use.")]
    public static partial void ToolCallFlagged(ILogger logger, string requestId, string tenant, string tool);

    [LoggerMessage(EventId = EventIds.McpListUnreadable, EventName = "McpListUnreadable", Level = LogLevel.Warning,
        Message = "MCP request {RequestId}: the tool list from the server could not be checked ({Reason}); it was not passed on.")]
    public static partial void ListUnreadable(ILogger logger, string requestId, string reason);
}
